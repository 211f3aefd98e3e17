"""Trains the iris classifier that tests/mlserver_e2e.rs serves with MLServer.

    python train_iris.py MODEL_DIR HTTP_PORT GRPC_PORT [METRICS_PORT]

Writes into MODEL_DIR (a model repository that `mlserver start MODEL_DIR` serves):

* ``model.joblib``: a LogisticRegression fitted on the whole iris data set (deterministic:
  lbfgs on fixed data, and ``random_state`` fixed anyway);
* ``model-settings.json``: model ``iris``, implementation ``mlserver_sklearn.SKLearnModel``,
  uri ``./model.joblib`` (relative to this file);
* ``settings.json``: the server listens on 127.0.0.1 only, on the given HTTP and gRPC ports.
  Without METRICS_PORT the Prometheus metrics server is disabled (``metrics_endpoint: null``),
  so the test needs two free ports, not three. ``parallel_workers: 0`` runs inference in the
  server process itself: no worker processes that would outlive a SIGKILLed server.

The iris data comes from scikit-learn itself: ``load_iris()`` reads the CSV that the
scikit-learn wheel ships (sklearn/datasets/data/iris.csv), offline; nothing is downloaded.
"""

import json
import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(f"usage: {argv[0]} MODEL_DIR HTTP_PORT GRPC_PORT [METRICS_PORT]")
    out, http_port, grpc_port = argv[1], int(argv[2]), int(argv[3])
    metrics_port = int(argv[4]) if len(argv) == 5 else None
    os.makedirs(out, exist_ok=True)

    iris = load_iris()  # bundled with scikit-learn: no network
    model = LogisticRegression(max_iter=1000, random_state=0)
    model.fit(iris.data, iris.target)
    joblib.dump(model, os.path.join(out, "model.joblib"))

    model_settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": 0,
        "environments_dir": os.path.join(out, ".envs"),
        "metrics_dir": os.path.join(out, ".metrics"),
    }
    if metrics_port is None:
        settings["metrics_endpoint"] = None
    else:
        settings["metrics_port"] = metrics_port
    for name, doc in (("model-settings.json", model_settings), ("settings.json", settings)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

    # What the test expects, printed for its log: the classes of a setosa, a versicolor and a
    # virginica (rows 0, 50 and 100 of the data set).
    rows = [0, 50, 100]
    print(f"trained {type(model).__name__}: accuracy {model.score(iris.data, iris.target):.3f}, "
          f"rows {rows} -> {model.predict(iris.data[rows]).tolist()}")


if __name__ == "__main__":
    main(sys.argv)
