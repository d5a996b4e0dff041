"""Optional sign-in through Streamlit's own OpenID Connect login (``st.login``).

It is off unless ``.streamlit/secrets.toml`` has an ``[auth]`` section (README, "Sharing
the app on a network"). Then every page asks the visitor to sign in before it shows
anything, the sidebar says who is signed in, and reports name the signed-in reviewer.
Streamlit itself runs the OIDC flow and keeps the identity in a signed cookie; the app only
reads ``st.user``.
"""

from __future__ import annotations

import streamlit as st


def login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all: the app stays open, as on a laptop
        return False


def signed_in_name() -> str | None:
    """The signed-in user's name (else e-mail); None when login is off or nobody is signed in."""
    if not login_configured() or not st.user.get("is_logged_in"):
        return None
    return st.user.get("name") or st.user.get("email") or "signed-in user"


def _providers() -> list[str | None]:
    """The providers named as ``[auth.NAME]`` sections, or [None] for the single default one."""
    named = [name for name, value in st.secrets["auth"].items() if hasattr(value, "items")]
    return named or [None]


def require_login() -> None:
    """Stop this run at a sign-in prompt unless login is off or someone is signed in."""
    if not login_configured():
        return
    if st.user.get("is_logged_in"):
        with st.sidebar:
            st.caption(f"Signed in as **{signed_in_name()}**")
            st.button("Log out", key="hv_logout", on_click=st.logout)
        return
    st.title("HematoVision")
    st.info("This server asks everyone to sign in before they can see or upload images. "
            "Sign in with your organisation's account.", icon=":material/lock:")
    for provider in _providers():
        label = "Sign in" if provider is None else f"Sign in with {provider.replace('_', ' ').title()}"
        st.button(label, key=f"hv_login_{provider or 'default'}", type="primary", on_click=st.login,
                  args=() if provider is None else (provider,))
    st.stop()
