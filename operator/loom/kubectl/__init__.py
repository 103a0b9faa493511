"""`kubectl loom`: a kubectl plugin for Loom's four kinds (status, lineage, promote/abort, retrain,
suspend/resume). It reads and patches the objects through the API server only, as kubectl does."""
