"""The web console at /ui: live models, routing decisions, experiments, usage and a playground.

    add_console(app)     # in pointsman.gateway.app.create_app

Plain HTML, CSS and JavaScript under static/ (no build step, nothing from a CDN); the
JSON it reads comes from routes.py, shaped by views.py from the control models' answers.
"""

from pointsman.gateway.console.decisions import Decision, DecisionLog, decision_from
from pointsman.gateway.console.routes import add_console

__all__ = ["Decision", "DecisionLog", "add_console", "decision_from"]
