"""Getting published files onto this machine: the cache layout, downloads, mirror folders, built movies.

- `cache`: where each source URL lives in the cache (``$OPENRETINA_CACHE_DIRECTORY``, else the XDG
  cache), laid out like the Hugging Face mirror;
- `download`: atomic, resumable, retried and verified downloads, zip extraction, and the
  inter-process lock (`exclusive_lock`) every cache writer holds;
- `mirror_folder`: fetch a whole mirror folder from its listing;
- `built_movies`: movies rebuilt once from published pieces, cached as ``.npy`` and streamed.

Dataset modules import these names from here; the submodules import each other directly.
"""

from openretina_data.datasets.fetching.built_movies import (
    BUILT_MARKER,
    Builder,
    MovieWriter,
    cached_movies,
    mean_std,
    replace_built_folder,
)
from openretina_data.datasets.fetching.cache import (
    CACHE_ENV_VAR,
    HUGGING_FACE_BASE,
    cache_path,
    default_cache_dir,
    extracted_path,
    hugging_face_url,
    is_set,
    is_url,
    relative_cache_path,
    resolve_cache_dir,
)
from openretina_data.datasets.fetching.download import (
    Opener,
    ProgressCallback,
    StderrProgress,
    archive_result,
    download_file,
    exclusive_lock,
    extract_archive,
    fetch,
)
from openretina_data.datasets.fetching.mirror_folder import LISTING_NAME, fetch_folder, listing_url

__all__ = [
    "BUILT_MARKER",
    "CACHE_ENV_VAR",
    "HUGGING_FACE_BASE",
    "LISTING_NAME",
    "Builder",
    "MovieWriter",
    "Opener",
    "ProgressCallback",
    "StderrProgress",
    "archive_result",
    "cache_path",
    "cached_movies",
    "default_cache_dir",
    "download_file",
    "exclusive_lock",
    "extract_archive",
    "extracted_path",
    "fetch",
    "fetch_folder",
    "hugging_face_url",
    "is_set",
    "is_url",
    "listing_url",
    "mean_std",
    "relative_cache_path",
    "replace_built_folder",
    "resolve_cache_dir",
]
