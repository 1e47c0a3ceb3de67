// Every <div class="chart" data-chart="ID"> becomes a uPlot chart of the JSON in
// <script type="application/json" id="ID"> (built by waveidp.console.charts.Chart).
function drawChart(el) {
  const source = document.getElementById(el.dataset.chart);
  if (!source || el.dataset.drawn) return;
  const spec = JSON.parse(source.textContent);
  el.dataset.drawn = "1";
  const width = Math.max(320, el.clientWidth || 600);
  const series = [{ label: spec.xLabel || (spec.time ? "time" : "x") }];
  for (const s of spec.series) {
    const line = { label: s.label, stroke: s.color, width: 2, points: { show: spec.x.length < 40 } };
    if (spec.bars) {
      line.fill = s.color + "66";
      line.paths = uPlot.paths.bars({ size: [0.6, 40] });
    }
    if (s.unit) line.value = (u, v) => (v == null ? "–" : v.toLocaleString() + " " + s.unit);
    series.push(line);
  }
  const opts = {
    title: spec.title,
    width: width,
    height: 220,
    scales: { x: { time: spec.time } },
    series: series,
    axes: [{ label: spec.xLabel || undefined }, { label: spec.yLabel || undefined }],
  };
  const data = [spec.x, ...spec.series.map((s) => s.values)];
  new uPlot(opts, data, el);
}

function drawCharts(root) {
  root.querySelectorAll(".chart[data-chart]").forEach(drawChart);
}

document.addEventListener("DOMContentLoaded", () => drawCharts(document));
document.addEventListener("htmx:afterSettle", (e) => drawCharts(e.target));
