"""The triage queue: cases and claims, intake and rules-only fallback, and the proactive monitors that open cases."""
