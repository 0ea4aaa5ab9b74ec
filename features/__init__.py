"""Raw tables to features: the data contract, the simulator and point-in-time features."""
