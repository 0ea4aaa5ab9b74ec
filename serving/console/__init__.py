"""The investigator console's own parts: sessions (sessions.py), its pages (pages.py: templates and static files).

Its routes are a router in serving/api/console.py; they call the same domain functions as the JSON routes.
"""
