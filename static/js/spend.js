// Charts of the spend page. Amounts arrive as exact decimal strings; Chart.js needs numbers to draw.
(function () {
  Chart.defaults.animation = false; // figures appear at once, as read
  const data = JSON.parse(document.getElementById("spend-data").textContent);
  const usd = (value) => "$" + Number(value).toFixed(Number(value) < 1 ? 4 : 2);
  const bar = (id, rows) => new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: rows.map((r) => r[0]), datasets: [{ label: "USD", data: rows.map((r) => Number(r[1])), backgroundColor: "#2f5bd3" }] },
    options: { indexAxis: "y", plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => usd(c.raw) } } } },
  });
  bar("chart-providers", data.providers);
  bar("chart-models", data.models);
  const days = data.daily.map((r) => r[0]);
  let running = 0;
  const cumulative = data.daily.map((r) => (r[0] > data.today ? null : (running += Number(r[1]))));
  const projection = days.map((_, i) => (i === days.length - 1 ? Number(data.projected) : null));
  new Chart(document.getElementById("chart-daily"), {
    data: {
      labels: days,
      datasets: [
        { type: "bar", label: "Spend that day", data: data.daily.map((r) => Number(r[1])), backgroundColor: "#2f5bd3" },
        { type: "line", label: "Month so far", data: cumulative, borderColor: "#17803d" },
        { type: "line", label: "Projected month end", data: projection, borderColor: "#a15c00", pointRadius: 6, showLine: false },
      ],
    },
    options: { plugins: { tooltip: { callbacks: { label: (c) => c.dataset.label + ": " + usd(c.raw) } } } },
  });
})();
