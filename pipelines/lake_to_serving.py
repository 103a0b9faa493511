"""lake_to_serving: a new Iceberg snapshot carried through Loom to serving, as a Kubeflow pipeline.

ingest -> quality check -> materialize -> train -> evaluate -> deploy (only when the version won).
Each step waits for what Loom's operator reports on its objects; deploy moves the served alias in
MLflow or patches the InferenceService, never a child of either.

    python pipelines/lake_to_serving.py compile pipelines/lake_to_serving.yaml
    python pipelines/lake_to_serving.py run --arguments '{"namespace": "default"}'

`run` runs it here with kfp.local's SubprocessRunner in this interpreter (no Kubeflow needed) against
the current kubeconfig, and prints the pipeline's outputs as one JSON line. It runs as a script, so
its siblings import from pipelines/ and nothing else of the repository lands on sys.path (a top-level
directory such as docker/ would pass for a namespace package and shadow an absent library).
"""

import argparse
import json
import tempfile
from typing import NamedTuple

from kfp import compiler, dsl
from steps import deploy, evaluate, ingest, materialize, quality_check, train


@dsl.pipeline(name="lake-to-serving", description="A new lake snapshot through Loom's features, training and gate "
                                                  "to serving")
def lake_to_serving(namespace: str = "default", datalake: str = "movielens", table: str = "user_features",
                    featureset: str = "user-features", trainingjob: str = "movielens-two-tower",
                    inference_service: str = "movie-recommender", after_snapshot_id: str = "", min_rows: int = 100,
                    max_age_seconds: int = 0, timeout_seconds: int = 7200, tracking_uri: str = "") -> NamedTuple(
        "Lineage", [("snapshot_id", str), ("feature_view_version", str), ("model_version", str), ("won", bool)]):
    """Defaults name the samples' objects; `after_snapshot_id` is the snapshot to move past (empty:
    the current one)."""
    ingested = ingest(namespace=namespace, datalake=datalake, table=table, after_snapshot_id=after_snapshot_id,
                      timeout_seconds=timeout_seconds)
    checked = quality_check(snapshot_id=ingested.outputs["snapshot_id"], row_count=ingested.outputs["row_count"],
                            committed_at=ingested.outputs["committed_at"], min_rows=min_rows,
                            max_age_seconds=max_age_seconds)
    materialized = materialize(namespace=namespace, featureset=featureset, datalake=datalake, table=table,
                               snapshot_id=checked.output, timeout_seconds=timeout_seconds)
    trained = train(namespace=namespace, trainingjob=trainingjob, featureset=featureset,
                    snapshot_id=materialized.outputs["snapshot_id"], timeout_seconds=timeout_seconds)
    evaluated = evaluate(namespace=namespace, trainingjob=trainingjob, model_version=trained.outputs["model_version"])
    with dsl.If(evaluated.outputs["Output"] == True, name="won"):  # noqa: E712 (kfp builds the condition from ==)
        deployed = deploy(namespace=namespace, inference_service=inference_service, model_name=trained.outputs["model_name"],
                          model_version=trained.outputs["model_version"], tracking_uri=tracking_uri)
    # Every step observes the cluster: a cached output would be an old snapshot's.
    for task in (ingested, checked, materialized, trained, evaluated, deployed):
        task.set_caching_options(False)
    outputs = NamedTuple("Lineage", [("snapshot_id", str), ("feature_view_version", str), ("model_version", str),
                                     ("won", bool)])
    return outputs(materialized.outputs["snapshot_id"], materialized.outputs["feature_view_version"],
                   trained.outputs["model_version"], evaluated.outputs["Output"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="lake_to_serving.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("compile", help="write the pipeline's IR YAML").add_argument("path")
    run = commands.add_parser("run", help="run it here with kfp.local against the current kubeconfig")
    run.add_argument("--arguments", default="{}", help="the pipeline's parameters as a JSON object")
    run.add_argument("--pipeline-root", default=None, help="where kfp.local keeps the run's outputs (a temp dir)")
    args = parser.parse_args()
    if args.command == "compile":
        compiler.Compiler().compile(lake_to_serving, args.path)
        return
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=args.pipeline_root or tempfile.mkdtemp())
    outputs = lake_to_serving(**json.loads(args.arguments)).outputs
    print(json.dumps({name: outputs[name] for name in outputs}))


if __name__ == "__main__":
    main()
