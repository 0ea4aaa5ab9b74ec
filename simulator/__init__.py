"""A simulated live-shopping marketplace: accounts, orders, reports, enforcements and the hidden truth behind them."""
