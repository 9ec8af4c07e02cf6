"""Triton adapter of `recommend`: prompt + requirements -> recommended model, from the router's scoring.

    curl -X POST localhost:8000/v2/models/recommend/generate -d '{"text_input": "def f():", "prefer_speed": true}'
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from pointsman.policy.analysis import LexicalAnalyzer, TwoStageAnalyzer
from pointsman.policy.analysis.in_process import InProcessClassifier
from pointsman.policy.contract import RECOMMEND_OUTPUTS, RecommendParams, input_tensors, parse_recommend
from pointsman.policy.selection.live import start_live_status
from pointsman.policy.selection.recommend import recommend
from pointsman.policy.selection.scoring import Requirements
from pointsman.triton_adapters.classifier_bls import MODEL as CLASSIFIER
from pointsman.triton_adapters.model_config import complete_config
from pointsman.triton_adapters.triton_io import request_fields, response, to_triton_error

INPUTS = input_tensors(RecommendParams)


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        return complete_config(auto_complete_model_config, input_tensors(RecommendParams), RECOMMEND_OUTPUTS,
                               decoupled=False)

    def initialize(self, args):
        # the router measures; this model reads its figures back from the metrics port, and
        # follows the repository index as the router does
        self.catalog, self.board, self.poller = start_live_status(Path(args["model_repository"]).parent,
                                                                  import_live=True)
        # the router's analyser, built as the router builds it: lexical first, the classifier (in
        # process, from the served model's files) when it is unsure
        repository = Path(args["model_repository"]).parent
        self.analyzer = TwoStageAnalyzer(LexicalAnalyzer(), InProcessClassifier.load(repository / CLASSIFIER / "1"))

    def execute(self, requests):
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        try:
            ask = parse_recommend(request_fields(request, INPUTS))
            needs = Requirements(max_tokens=ask.max_tokens, max_response_time=ask.max_response_time,
                                 min_quality=ask.min_quality, prefer_speed=ask.prefer_speed)
            if not self.board.ready_models():  # loaded after this model's last poll: look now, as the router does
                self.poller.refresh()
            rec = recommend(self.catalog, self.board.snapshot(), self.analyzer.analyze(ask.text_input), needs)
            return response(recommended_model=rec.recommended_model, confidence=float(rec.confidence),
                            alternatives=json.dumps(list(rec.alternatives)), reasoning=rec.reasoning, task=rec.task)
        except Exception as exc:  # noqa: BLE001 - per-request error, the model keeps serving
            return pb_utils.InferenceResponse(error=to_triton_error(exc))

    def finalize(self):
        self.poller.stop()
