"""The language of metacrm metadata: documents, their JSON Schemas, and the compiled model.

Nothing here talks to a database. `load_directory` reads YAML documents and checks them
against the schemas; `metamodel.compiler.compile_model` turns checked documents into an immutable `Model`
that every layer of the engine receives explicitly.
"""

from metacrm.metamodel.errors import MetadataError, Problem
from metacrm.metamodel.loader import load_directory, load_documents
from metacrm.metamodel.model import FieldDef, Model, ObjectDef

__all__ = [
    "FieldDef",
    "MetadataError",
    "Model",
    "ObjectDef",
    "Problem",
    "load_directory",
    "load_documents",
]
