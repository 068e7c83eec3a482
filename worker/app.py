"""The Celery application: queues, routing and reliability settings (ARCHITECTURE.md).

Queue "node": prepare, deliver and redeliver (need the spool and the PACS network, run beside
the node).
Queue "inference": infer (needs only the broker; runs on GPU machines, a batch of images per
forward pass). Late acknowledgement, prefetch 1 (an inference worker: two batches,
worker.process) and reject-on-worker-lost: a task whose worker dies is delivered again.
Priorities order the work of each worker: results, then scoring, then preparing (below).
"""

from celery import Celery
from kombu import Queue

from dicom_node.config import NodeSettings

NODE_QUEUE = "node"
INFERENCE_QUEUE = "inference"
QUEUES = (NODE_QUEUE, INFERENCE_QUEUE)
RESTORE_SWEEP_S = 5
SETTINGS_KEY = "dicom_node_settings"  # the NodeSettings of this process's tasks (worker.runtime)
# Message priorities (kombu's Redis transport: 0 first; its default steps 0, 3, 6, 9 are each a
# list, and a worker pops every queue's priority-0 list before any priority-3 one). Finishing an
# image comes before starting another: results (deliver, redeliver) first, then scoring, then
# preparing the next image, so a backlog never holds back the results of images already scored
# (docs/operations.md, "Scheduling": what this bounds in the broker and what not yet).
RESULTS_PRIORITY = 0
SCORING_PRIORITY = 3
PREPARING_PRIORITY = 9

app = Celery("dicom_node", include=["worker.tasks"])
app.conf.update(
    task_queues=tuple(Queue(name) for name in QUEUES),
    task_default_queue=NODE_QUEUE,
    task_routes={
        "worker.tasks.prepare": {"queue": NODE_QUEUE},
        "worker.tasks.infer": {"queue": INFERENCE_QUEUE},
        "worker.tasks.deliver": {"queue": NODE_QUEUE},
    },
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


def configure(settings: NodeSettings, broker_url: str) -> Celery:
    """Point the app at ``broker_url`` with the settings' reliability options, and hand the
    settings to the tasks of this process. Returns the app."""
    app.conf.update(
        broker_url=broker_url,
        **{SETTINGS_KEY: settings},
        # A task whose worker died unacknowledged is delivered again once it is older than the
        # visibility timeout; sweep for such tasks every few seconds rather than kombu's
        # default of about 100 s.
        broker_transport_options={
            # message bodies (JSON) kept as text: kombu's default base64 adds a third to every
            # prepared image and a decode under the GIL per message (docs/benchmarks.md)
            "body_encoding": "utf-8",
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": RESTORE_SWEEP_S,
            "unacked_restore_throttle": 1,
        },
    )
    return app
