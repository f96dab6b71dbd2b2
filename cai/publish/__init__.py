"""`cai publish`: a run folder as a Hugging Face dataset repository folder.

configs.py says which run files become which configuration and how rows become Parquet; card.py
writes the dataset card from the manifest; files.py copies the constitution(s) and the pipeline
file; clean.py keeps paths, URLs and keys out; hub.py pushes; folder.py puts it together.
"""

from cai.publish.folder import Published, publish

__all__ = ["Published", "publish"]
