"""The Streamlit app's own code, shared by the page scripts in ``app_pages/``.

- ``state``: every session-state key, the current image and its accessors;
- ``caches``: the app's only cache layer (model, decoded images, predictions, maps);
- ``widgets``: uploader, cell picker, status boxes, report section, overlays;
- ``explanations``: the Explain page's methods, settings and cache keys;
- ``texts``: how numbers, statuses and cell choices are worded;
- ``images``: the display copies of an image (boxes drawn, thumbnails);
- ``page_paths``: the page scripts, for links between pages.

The charts come from the core (``hematovision.charts``), so reports draw the same ones.
The core package ``hematovision/`` never imports Streamlit or this package.
"""
