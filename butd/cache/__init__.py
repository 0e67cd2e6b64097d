"""The processed cache's format, owned in one place: the manifest record and its version
(`manifest`), the checks when a cache is opened (`load`, `integrity`), the raw files'
fingerprints and the folder's locks. `butd.preparation` writes a cache, `butd.data` reads it."""
