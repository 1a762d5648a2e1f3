"""Signing in over HTTP as the browser does (the form's CSRF token is double-submitted in a cookie)."""

from __future__ import annotations

import re

import httpx


def login_form(c: httpx.Client) -> str:
    r = c.get("/ui/login")
    assert r.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)


def sign_in(url: str, name: str, password: str) -> tuple[httpx.Client, str]:
    """A client holding the session cookie, and the session's CSRF token."""
    c = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    tok = login_form(c)
    r = c.post("/ui/login", data={"csrf": tok, "username": name, "password": password, "next": "/ui/"})
    assert r.status_code == 303, r.text
    page = c.get("/ui/")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return c, csrf
