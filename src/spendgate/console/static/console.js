// spendgate console: draws the usage charts from the JSON block the page carries.
// No inline script anywhere: the Content-Security-Policy allows scripts from this origin only.
(function () {
  "use strict";
  var PALETTE = ["#2f6fdf", "#e07b39", "#2f855a", "#9b59b6", "#c0392b", "#7f8c8d"];

  function stacked(series, key) {
    // Cumulative sums, so each model's band sits on the ones before it.
    var sums = [];
    return series.map(function (s) {
      var values = s[key];
      sums = values.map(function (v, i) { return (sums[i] || 0) + (v || 0); });
      return sums.slice();
    });
  }

  function label(key) {
    // Costs are often fractions of a cent: show enough digits to tell the ticks apart.
    return function (value) {
      if (key !== "cost") { return value.toLocaleString(); }
      if (value === 0) { return "$0"; }
      return "$" + (value >= 1 ? value.toFixed(2) : value.toPrecision(2));
    };
  }

  function draw(element, data, key) {
    if (typeof uPlot === "undefined" || !data.starts.length) { return; }
    var layers = stacked(data.series, key);
    var series = [{}];
    data.series.forEach(function (s, i) {
      series.push({
        label: s.model,
        stroke: PALETTE[i % PALETTE.length],
        fill: PALETTE[i % PALETTE.length] + "55",
        paths: uPlot.paths.bars({ size: [0.8, 48] }),
        points: { show: false },
      });
    });
    var width = Math.max(280, element.clientWidth || 600);
    // The top layer first: each drawn bar covers the part of the next one below it.
    var order = layers.map(function (_, i) { return i; }).reverse();
    var plotSeries = [series[0]].concat(order.map(function (i) { return series[i + 1]; }));
    var plotData = [data.starts].concat(order.map(function (i) { return layers[i]; }));
    element.dataset.buckets = String(data.starts.length);
    new uPlot({
      width: width,
      height: 220,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.tz); },
      series: plotSeries,
      axes: [{}, { size: 70, values: function (u, ticks) { return ticks.map(label(key)); } }],
      legend: { live: false },
    }, plotData, element);
  }

  function burn(element, data) {
    // Use so far (cumulative, per bucket), the hard limit, and the pace so far to the
    // window's end (dashed).
    var xs = data.starts.concat([data.now, data.end]);
    var used = data.used.concat([null, null]);
    var limit = xs.map(function () { return data.limit; });
    var pace = data.starts.map(function () { return null; }).concat(
      [data.settled, data.projected_at_end]);
    var width = Math.max(280, element.clientWidth || 600);
    element.dataset.points = String(data.starts.length);
    new uPlot({
      width: width,
      height: 160,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.tz); },
      series: [
        {},
        { label: "used (" + data.metric + ")", stroke: PALETTE[0], width: 2,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
        { label: "hard limit", stroke: PALETTE[4], dash: [6, 4], points: { show: false } },
        { label: "at this pace", stroke: PALETTE[1], dash: [3, 3], points: { show: false },
          spanGaps: true },
      ],
      axes: [{}, { size: 90, values: function (u, ticks) { return ticks.map(label(data.metric === "usd" ? "cost" : "tokens")); } }],
      legend: { live: false },
    }, [xs, used, limit, pace], element);
  }

  function init() {
    document.querySelectorAll(".burn").forEach(function (element) {
      var block = element.nextElementSibling;
      if (block && block.classList.contains("burn-data")) {
        burn(element, JSON.parse(block.textContent));
      }
    });
    var block = document.getElementById("chart-data");
    if (!block) { return; }
    var data = JSON.parse(block.textContent);
    document.querySelectorAll(".chart[data-series]").forEach(function (element) {
      element.textContent = "";
      draw(element, data, element.dataset.series);
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
