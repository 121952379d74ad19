"""The local web page and its JSON API (`vidstyle serve`): upload, preview, queue, compare, download.

:mod:`vidstyle.serve.app` is the FastAPI app, :mod:`.jobs` the queue that runs jobs through the
library's own inference (:func:`vidstyle.infer.batch.run_item`), :mod:`.uploads` streams uploads to
disk and tells videos from photos by decoding them, :mod:`.catalog` lists the models with their
thumbnails, :mod:`.preview` stylizes one frame; ``static/`` is the page (plain HTML, CSS and
JavaScript, nothing fetched from elsewhere). This module imports nothing, so the command line can
read the defaults below without loading the web stack.
"""

DEFAULT_MAX_UPLOAD = 2_000_000_000       # bytes
DEFAULT_KEEP_HOURS = 24.0
