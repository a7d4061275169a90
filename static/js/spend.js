// Charts of the spend page. Amounts arrive as exact decimal strings; Chart.js needs numbers to
// draw, and every label and axis tick is written by LLMHub.usd (static/js/money.js).
(function () {
  Chart.defaults.animation = false; // figures appear at once, as read
  const style = getComputedStyle(document.documentElement);
  Chart.defaults.color = style.getPropertyValue("--muted").trim() || "#545d6c";
  Chart.defaults.borderColor = style.getPropertyValue("--line").trim() || "#dde1e8";
  const accent = style.getPropertyValue("--accent").trim() || "#2f5bd3";
  const data = JSON.parse(document.getElementById("spend-data").textContent);
  const usd = window.LLMHub.usd;
  const money = { title: { display: true, text: "US dollars" }, ticks: { callback: (value) => usd(value) } };
  const bar = (id, rows) => new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: rows.map((r) => r[0]), datasets: [{ label: "Cost", data: rows.map((r) => Number(r[1])), backgroundColor: accent }] },
    options: {
      indexAxis: "y",
      scales: { x: money },
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => usd(rows[c.dataIndex][1]) } } },
    },
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
        { type: "bar", label: "Spend that day", data: data.daily.map((r) => Number(r[1])), backgroundColor: accent },
        { type: "line", label: "Month so far", data: cumulative, borderColor: "#17803d" },
        { type: "line", label: "Projected month end", data: projection, borderColor: "#a15c00", pointRadius: 6, showLine: false },
      ],
    },
    options: {
      scales: { y: money },
      plugins: { tooltip: { callbacks: { label: (c) => c.dataset.label + ": " + usd(c.raw) } } },
    },
  });
})();
