"""HematoVision: `streamlit run streamlit_app.py`.

The entry point only sets up the page, the shared state and the navigation; each page
lives in app_pages/ and calls the core package through the app package (app/).

The folder is deliberately not called ``pages/``: Streamlit treats a ``pages/`` folder
next to the entry point as a legacy (v1) multipage app, and then a deep link such as
/model, opened as the first request after the server starts (or by a browser tab that
reconnects after a restart), runs that page script alone, without this file: no wide
layout, no shared sidebar, and an auto-generated page list.
"""

import streamlit as st

from app import caches, state, widgets
from app.auth import require_login
from app.page_paths import (
    ATLAS_PAGE,
    BATCH_PAGE,
    CLASSIFY_PAGE,
    COMPARE_PAGE,
    EXPLAIN_PAGE,
    HOME_PAGE,
    MODEL_PAGE,
    QUIZ_PAGE,
)

st.set_page_config(
    page_title="HematoVision",
    page_icon=":material/biotech:",
    layout="wide",
    initial_sidebar_state="expanded",
)
state.init_state()
require_login()  # stops here with a sign-in prompt when [auth] is configured and nobody is signed in

pages = [
    st.Page(HOME_PAGE, title="Home", icon=":material/home:", default=True),
    st.Page(CLASSIFY_PAGE, title="Classify", icon=":material/labs:"),
    st.Page(BATCH_PAGE, title="Batch differential", icon=":material/grid_view:"),
    st.Page(EXPLAIN_PAGE, title="Explain", icon=":material/visibility:"),
    st.Page(COMPARE_PAGE, title="Compare methods", icon=":material/compare:"),
    st.Page(ATLAS_PAGE, title="Atlas", icon=":material/menu_book:"),
    st.Page(QUIZ_PAGE, title="Quiz", icon=":material/school:"),
    st.Page(MODEL_PAGE, title="Model", icon=":material/fact_check:"),
]
navigation = st.navigation(pages)
widgets.sidebar_current_image()
try:
    navigation.run()
finally:  # also after st.stop() and st.rerun(), which end a run by raising
    caches.freeze_long_lived_objects()
