"""Published datasets (Höfling 2024, Maheswaranathan 2023, Goldin 2022, Karamanlis 2024, Sridhar
2025): readers, downloads and the cache.

A dataset read from one file is one module (``goldin_2022``, ``karamanlis_2024``,
``maheswaranathan_2023``); one read from several is a folder (``hoefling_2024/``, ``sridhar_2025/``).
``fetching/`` gets published files into the cache; the other modules are helpers the readers share.

Each loader returns the same :class:`~openretina_data.records.Dataset` as the generic HDF5 reader,
so splits, batching, quality checks and metrics are shared. See docs/datasets.md.
"""

from openretina_data.datasets.fetching import (
    StderrProgress,
    default_cache_dir,
    download_file,
    extract_archive,
    fetch,
    hugging_face_url,
)
from openretina_data.datasets.goldin_2022 import load_goldin_2022, read_goldin_2022
from openretina_data.datasets.hoefling_2024 import (
    hoefling_quality_checks,
    load_hoefling_2024,
    read_hoefling_2024,
)
from openretina_data.datasets.karamanlis_2024 import load_karamanlis_2024, read_karamanlis_2024
from openretina_data.datasets.maheswaranathan_2023 import (
    load_maheswaranathan_2023,
    read_maheswaranathan_2023,
)
from openretina_data.datasets.sridhar_2025 import load_sridhar_2025, read_sridhar_2025

__all__ = [
    "StderrProgress",
    "default_cache_dir",
    "download_file",
    "extract_archive",
    "fetch",
    "hoefling_quality_checks",
    "hugging_face_url",
    "load_goldin_2022",
    "load_hoefling_2024",
    "load_karamanlis_2024",
    "load_maheswaranathan_2023",
    "load_sridhar_2025",
    "read_goldin_2022",
    "read_hoefling_2024",
    "read_karamanlis_2024",
    "read_maheswaranathan_2023",
    "read_sridhar_2025",
]
