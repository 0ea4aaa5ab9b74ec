"""The pure policy: the penalty mapper, the queue's ranking and rules, spike verdicts, and the one loader of the policy file."""
