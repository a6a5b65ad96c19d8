// Render every Vega-Lite spec on the page with the vendored vega-embed. The specs sit in
// <script type="application/json"> blocks (data, never code); nothing here reaches the network.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("div.vega[data-spec]").forEach(function (el) {
    var src = document.getElementById(el.getAttribute("data-spec"));
    if (!src || typeof vegaEmbed === "undefined") { return; }
    var spec = JSON.parse(src.textContent);
    vegaEmbed(el, spec, { actions: { export: true, source: false, compiled: false, editor: false },
                          renderer: "svg" }).catch(function (err) {
      el.textContent = "plot failed: " + err;
    });
  });
});
