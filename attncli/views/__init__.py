"""Terminal views: each result type has one function that turns it into a rich renderable.

`view(result, **options)` finds it. The views arrange and label what the result holds;
the numbers themselves come from attncli.commands and attncli.analysis.
"""

from rich.console import RenderableType

from attncli import results
from attncli.views.attribution import attribution_view
from attncli.views.common import figure_name
from attncli.views.explain import explain_view
from attncli.views.figures import FIGURES, terminal_picture
from attncli.views.generation import generate_view
from attncli.views.lens import lens_view
from attncli.views.matrices import heatmap_view, model_view, rollout_view
from attncli.views.predictions import predict_view
from attncli.views.rankings import check_view, compare_view, heads_view, query_view
from attncli.views.vectors import dot_view, embed_view, similar_view, softmax_view, tokenize_view

__all__ = ["VIEWS", "figure", "view"]

VIEWS = {
    results.ExplainResult: explain_view,
    results.HeatmapResult: heatmap_view,
    results.ModelGridResult: model_view,
    results.RolloutResult: rollout_view,
    results.QueryResult: query_view,
    results.HeadsResult: heads_view,
    results.CompareResult: compare_view,
    results.CheckResult: check_view,
    results.TokenizeResult: tokenize_view,
    results.EmbedResult: embed_view,
    results.SimilarResult: similar_view,
    results.SoftmaxResult: softmax_view,
    results.DotResult: dot_view,
    results.PredictResult: predict_view,
    results.AttributionResult: attribution_view,
    results.LensResult: lens_view,
    results.GenerateResult: generate_view,
}


def figure(result, kind: str, renderable: RenderableType, width: int, title: str | None = None, **options) -> str:
    """The document an export of `kind` (".html" or ".svg") holds, titled `title` where given: the
    figure of `result`, or where it has none a picture of its terminal view `renderable`, `width`
    columns wide. A result with a run's attention gets the interactive page, opened where the
    command pointed (query's page: at its first ranked head, its token held)."""
    run = getattr(result, "run", None)
    if kind == ".html" and isinstance(run, results.AttentionRun) and not isinstance(result, results.RolloutResult):
        from attncli.views.page import page_html  # only an export reads the page's script and style

        start = {"layer": getattr(result, "layer", 0), "head": getattr(result, "head", None) or 0}
        if isinstance(result, results.ExplainResult):
            start["head"] = result.walk_head
        if isinstance(result, results.QueryResult):
            first = result.ranking[0]
            start.update(layer=first.layer, head=first.head, query=result.token[0])
        title = title or f"attncli · {figure_name(run.model)}" + (" · ‖αv W_O‖ norms" if run.shows_norms else "")
        prompt = result.prompt_tokens if isinstance(result, results.GenerateResult) else None
        return page_html(run, title, {**start, "scale": options.get("scale", "fixed")}, prompt)
    if kind == ".svg" and type(result) in FIGURES:
        return FIGURES[type(result)](result, title=title, **options)
    return terminal_picture(renderable, kind, width, title)


def view(result, **options) -> RenderableType:
    """The terminal view of `result`, drawn with `options` (such as `values` or `top`) where its view takes them."""
    return VIEWS[type(result)](result, **options)
