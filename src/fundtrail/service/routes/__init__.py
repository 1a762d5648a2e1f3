"""One router per resource; ``ROUTERS`` is what the application factory mounts."""

from fundtrail.service.routes import (
    alerts,
    audit,
    cases,
    evidence,
    explore,
    graph,
    lookup,
    policy,
    screen,
    system,
    transfers,
    usertags,
    verdicts,
    watches,
    webhooks,
)

ROUTERS = [system.router, screen.router, transfers.router, verdicts.router, lookup.router, policy.router,
           audit.router, watches.router, alerts.router, webhooks.router, graph.router, explore.router,
           cases.router, usertags.router, evidence.router]
