"""One router per resource; ``ROUTERS`` is what the application factory mounts."""

from fundtrail.service.routes import audit, lookup, policy, screen, system, transfers, verdicts

ROUTERS = [system.router, screen.router, transfers.router, verdicts.router, lookup.router, policy.router,
           audit.router]
