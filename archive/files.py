"""Files: content-defined chunks as raw blocks, listed by one DAG-CBOR file node.

The one place to import file functions from; the work is done in four modules:

* :mod:`~craftnet.archive.file_node`: the file-node format (nodes, parts, their limits),
  building and parsing it (hostile input);
* :mod:`~craftnet.archive.file_writer`: adding a file, streamed once through writer
  threads that hash and commit while the caller's thread cuts chunks;
* :mod:`~craftnet.archive.file_reader`: reading a file's bytes back, each chunk checked;
* :mod:`~craftnet.archive.staging`: the marks that keep an add in progress from gc.
"""

from __future__ import annotations

from craftnet.archive.file_node import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    DEFAULT_MEDIA_TYPE,
    FILE_TYPE,
    FILE_VERSION,
    MAX_ENTRIES,
    PART_TYPE,
    ChunkRef,
    FileInfo,
    parse_file_node,
    parse_file_part,
)
from craftnet.archive.file_reader import (
    batches_by_size,
    file_info,
    iter_chunk_refs,
    iter_chunks,
    iter_file,
    iter_file_views,
    write_file,
)
from craftnet.archive.file_writer import Progress, add_file, add_path
from craftnet.archive.staging import (
    SESSION_LEN,
    STAGE_BY_CID,
    STAGE_BY_SESSION,
    STAGE_HEADER,
    clear_stage,
    stage_blocks,
)

__all__ = [
    "CHUNK_AVG",
    "CHUNK_MAX",
    "CHUNK_MIN",
    "DEFAULT_MEDIA_TYPE",
    "FILE_TYPE",
    "FILE_VERSION",
    "MAX_ENTRIES",
    "PART_TYPE",
    "SESSION_LEN",
    "STAGE_BY_CID",
    "STAGE_BY_SESSION",
    "STAGE_HEADER",
    "ChunkRef",
    "FileInfo",
    "Progress",
    "add_file",
    "add_path",
    "batches_by_size",
    "clear_stage",
    "file_info",
    "iter_chunk_refs",
    "iter_chunks",
    "iter_file",
    "iter_file_views",
    "parse_file_node",
    "parse_file_part",
    "stage_blocks",
    "write_file",
]
