"""Triton adapter of the streaming router: requests -> RoutingService (pointsman.policy.routing) -> responses.

    curl -N -X POST localhost:8000/v2/models/router_stream/generate_stream \
        -d '{"text_input": "def f():", "auto_select": true, "stream": true}'

The one router: usage writer, experiments and metrics live here. `router`, its
non-decoupled twin, forwards to it.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pointsman.errors import Overloaded
from pointsman.ops.experiments import ExperimentManager
from pointsman.ops.usage import RecordWriter, open_store, record_from_outcome
from pointsman.policy.admission import Admission
from pointsman.policy.analysis import ClassifierAnalyzer, LexicalAnalyzer, TwoStageAnalyzer
from pointsman.policy.analysis.in_process import InProcessClassifier
from pointsman.policy.call_guard import CallerCheck
from pointsman.policy.contract import ROUTER_OUTPUTS, ROUTER_PROBE, RouterParams, input_tensors
from pointsman.policy.health import HealthPolicy, HealthRegistry
from pointsman.policy.routing import Outcome, RoutedResult, RoutingService
from pointsman.policy.selection.live import endpoints_from_env, start_live_status
from pointsman.policy.selection.selector import Selector
from pointsman.triton_adapters.bls import ModelCaller, probe_twin_via_bls, probe_via_bls
from pointsman.triton_adapters.classifier_bls import MODEL as CLASSIFIER
from pointsman.triton_adapters.classifier_bls import probe_classifier_via_bls
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.model_keeper import TWIN_PROBE_S, HealthGauges, ModelKeeper, RepositoryClient, TwinWatch
from pointsman.triton_adapters.router_metrics import RouterMetrics
from pointsman.triton_adapters.status_gauges import StatusGauges
from pointsman.triton_adapters.triton_io import (
    FINAL,
    model_parameters,
    request_fields,
    request_parameters,
    require_decoupled,
    response,
    send_error,
)

INPUTS = input_tensors(RouterParams)
TWIN = "router"  # this model's non-decoupled twin


class _Sink:
    def __init__(self, sender, caller: CallerCheck):
        self._sender = sender
        self._caller = caller  # ended before the final response: a model-call reader may be asking about it
        self._decision = None  # sent with the first streamed piece: a stream names its model up front

    def on_decision(self, decision):
        self._decision = decision

    def on_text(self, piece):
        d, self._decision = self._decision, None
        if d is None:
            self._sender.send(response(text_output=piece))
            return
        self._sender.send(response(text_output=piece, selected_model=d.model, selection_mode=d.mode,
                                   selection_reason=d.reason, fallback_used=d.fallback_used, task=d.task))

    def on_finish(self, result: RoutedResult):
        d = result.decision
        self._caller.end()
        self._sender.send(response(
            text_output="" if result.streamed else result.text, tokens=result.tokens,
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
            selected_model=d.model, selection_mode=d.mode,
            selection_reason=d.reason, fallback_used=d.fallback_used, task=d.task, analyzer=d.analyzer,
            selection_ms=float(d.selection_ms), request_id=result.request_id,
        ), flags=FINAL)

    def on_error(self, error):
        self._caller.end()
        send_error(self._sender, error)


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        return complete_config(auto_complete_model_config, input_tensors(RouterParams), ROUTER_OUTPUTS, decoupled=True)

    def initialize(self, args):
        config = json.loads(args["model_config"])
        require_decoupled(config, args["model_name"])
        params = model_parameters(config)
        # the catalog follows the repository index: models with pointsman.* metadata join and leave live
        catalog, self.board, self.poller = start_live_status(Path(args["model_repository"]).parent)
        self.gauges = StatusGauges(self.board)
        self.gauges.start()
        self.metrics = RouterMetrics()
        # $POINTSMAN_DATABASE_URL (shared by replicas) or the SQLite file; writes off the request path
        self.store = open_store()
        hold = params.get("usage_hold_s", "")  # empty: hold records until the queue is full
        self.writer = RecordWriter(self.store, on_lost=self.metrics.count_lost,
                                   max_queue=int(params.get("usage_max_queued", "100000")),
                                   hold_s=float(hold) if hold else None)
        self.experiments = experiments = ExperimentManager(self.store, known_models=lambda: set(catalog.names))
        experiments.start_polling()
        # lexical first, the classifier when it is unsure; A/B arms may pin either. The classifier runs
        # here, in process: a BLS call to the served prompt_classifier added ~3 ms to a decision's p99
        lexical = LexicalAnalyzer()
        repository = Path(args["model_repository"]).parent
        classify = InProcessClassifier.load(Path(params.get("classifier_folder", "") or
                                                 repository / CLASSIFIER / "1"),
                                            threads=int(params.get("classifier_threads", "1")))
        # the router's own verdict on each model (Triton 2.51 calls a model with a dead stub READY)
        self.health = HealthRegistry(HealthPolicy(failure_threshold=int(params.get("failure_threshold", "3")),
                                                  backoff_base_s=float(params.get("reload_backoff_s", "1")),
                                                  backoff_max_s=float(params.get("reload_backoff_max_s", "60"))))
        self.keeper = ModelKeeper(self.health, target_of=lambda name: catalog[name].call_name if name in catalog
                                  else name, repository=RepositoryClient(endpoints_from_env().grpc_url),
                                  gauges=HealthGauges(), models=lambda: catalog.names)
        self.keeper.start()
        # the twins (router, gpt2, ...) answer clients directly: probed, and reloaded by a keeper of their own
        self.twin_health = HealthRegistry(self.health.policy)
        self.twin_keeper = ModelKeeper(self.twin_health, target_of=lambda name: name,
                                       repository=RepositoryClient(endpoints_from_env().grpc_url))
        def twins() -> list[str]:  # followed live, as the catalog is
            return [TWIN, *(entry.name for entry in catalog if entry.call_name != entry.name)]

        probe_s = float(params.get("twin_probe_s", TWIN_PROBE_S))
        self.twin_watch = TwinWatch(self.twin_health, twins, probe_twin_via_bls, interval=probe_s)
        self.twin_keeper.start()
        self.twin_watch.start()
        # the served classifier is for direct callers now; probed so a dead stub is reloaded by self.keeper
        self.classifier_watch = TwinWatch(self.health, lambda: [CLASSIFIER] if CLASSIFIER in self.poller.ready_names
                                          else [], probe_classifier_via_bls,
                                          interval=probe_s)
        self.classifier_watch.start()
        analyzers = {"lexical": lexical, "classifier": ClassifierAnalyzer(classify, fallback=lexical)}
        self.admission = Admission(max_in_flight=int(params.get("max_in_flight", "256")),
                                   default_timeout_s=float(params.get("request_timeout_s", "120")))
        self.service = RoutingService(
            Selector(catalog, self.board, TwoStageAnalyzer(lexical, classify), refresh=self.poller.refresh,
                     health=self.health),
            call_model=ModelCaller(catalog), observers=(self._observe,), experiments=experiments, analyzers=analyzers,
            admission=self.admission, probe=probe_via_bls,
        )
        self.pool = ThreadPoolExecutor(max_workers=int(params.get("worker_threads", "64")),
                                       thread_name_prefix="router")

    def _observe(self, outcome: Outcome):
        record = record_from_outcome(outcome)
        self.writer.record(record)
        self.metrics.observe(record)
        self.metrics.set_waiting(self.writer.waiting)  # analytics report what they have not seen

    def execute(self, requests):
        self.gauges.register(self.board.catalog.names)  # models that joined since: their gauges, made here
        arrived = time.monotonic()  # the deadline counts the wait for a worker too
        for request in requests:
            if request_parameters(request).get(ROUTER_PROBE):  # the twin asking whether this stub lives
                request.get_response_sender().send(flags=FINAL)
                continue
            try:
                self.admission.admit()
            except Overloaded as exc:  # refused at once, not queued behind work nobody will wait for
                send_error(request.get_response_sender(), exc)
                continue
            self.pool.submit(self._handle, request, arrived)
        return None

    def _handle(self, request, arrived):
        sender = request.get_response_sender()
        caller = CallerCheck(request.is_cancelled)
        try:
            fields = request_fields(request, INPUTS)
            self.service.handle(fields, _Sink(sender, caller), request_id=request.request_id(),
                                is_cancelled=caller, arrived=arrived)
        except Exception as exc:  # noqa: BLE001 - the caller gets an error, never silence
            caller.end()
            send_error(sender, exc)
        finally:
            self.admission.release()

    def finalize(self):
        self.classifier_watch.stop()
        self.twin_watch.stop()
        self.twin_keeper.stop()
        self.keeper.stop()
        self.poller.stop()
        self.gauges.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.experiments.close()
        self.writer.close()
        self.metrics.close()
        self.store.close()
