"""One module per checkpoint format, each returning the shared pretrain.formats.header.Header.

Use them through pretrain.checkpoint, the public API, which dispatches on the path.
"""
