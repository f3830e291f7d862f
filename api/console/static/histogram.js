// The VAE-Seq histogram of a job's clips with the K-means consistency band (paper §3.5, Algorithm 1 stage 2),
// drawn as inline SVG: no charting library is needed for one bar chart and a shaded band.

import { s } from "./console.js";

const WIDTH = 640;
const HEIGHT = 240;
const MARGIN = { top: 28, right: 20, bottom: 40, left: 44 };

function domain(values, band) {
  let low = Math.min(...values, ...(band ?? []));
  let high = Math.max(...values, ...(band ?? []));
  const pad = high > low ? (high - low) * 0.05 : 0.01;
  return [low - pad, high + pad];
}

/** Bin counts of `values` over [low, high) in `bins` equal bins (the last bin includes `high`). */
export function binCounts(values, low, high, bins) {
  const counts = new Array(bins).fill(0);
  for (const value of values) {
    const index = Math.min(Math.floor(((value - low) / (high - low)) * bins), bins - 1);
    counts[Math.max(index, 0)] += 1;
  }
  return counts;
}

export function drawHistogram(container, values, band, bins = 20) {
  if (!values.length) {
    container.replaceChildren();
    return;
  }
  const [low, high] = domain(values, band);
  const counts = binCounts(values, low, high, bins);
  const top = Math.max(...counts);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (value) => MARGIN.left + ((value - low) / (high - low)) * plotW;
  const y = (count) => MARGIN.top + plotH - (count / top) * plotH;
  const binW = plotW / bins;
  const inBand = band ? values.filter((v) => v >= band[0] && v <= band[1]).length : 0;
  const description = band
    ? `${values.length} clips, VAE-Seq from ${Math.min(...values).toFixed(4)} to ${Math.max(...values).toFixed(4)}; ` +
      `consistency band [${band[0].toFixed(4)}, ${band[1].toFixed(4)}] holds ${inBand} of them.`
    : `${values.length} clips, VAE-Seq from ${Math.min(...values).toFixed(4)} to ${Math.max(...values).toFixed(4)}; ` +
      "the filter has not set a band yet.";

  const children = [
    s("title", { id: "histogram-title" }, "Histogram of VAE-Seq with the K-means band"),
    s("desc", { id: "histogram-desc" }, description),
  ];
  if (band) {
    children.push(
      s("rect", { class: "band", x: x(band[0]), y: MARGIN.top, width: Math.max(x(band[1]) - x(band[0]), 1), height: plotH }),
    );
  }
  counts.forEach((count, i) => {
    if (count) {
      children.push(
        s("rect", { class: "bar", x: MARGIN.left + i * binW + 1, y: y(count), width: Math.max(binW - 2, 1), height: MARGIN.top + plotH - y(count) }),
      );
    }
  });
  if (band) {
    band.forEach((edge, i) => {
      const name = i === 0 ? "tₗ" : "tₕ";
      children.push(
        s("line", { class: "band-edge", x1: x(edge), x2: x(edge), y1: MARGIN.top - 4, y2: MARGIN.top + plotH }),
        s("text", { x: x(edge), y: MARGIN.top - 10, "text-anchor": i === 0 ? "end" : "start" }, `${name} = ${edge.toFixed(4)}`),
      );
    });
  }
  children.push(
    s("line", { class: "axis", x1: MARGIN.left, x2: MARGIN.left + plotW, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH }),
    s("line", { class: "axis", x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH }),
    s("text", { x: MARGIN.left - 6, y: MARGIN.top + 4, "text-anchor": "end" }, String(top)),
    s("text", { x: MARGIN.left - 6, y: MARGIN.top + plotH, "text-anchor": "end" }, "0"),
    s("text", { x: MARGIN.left + plotW / 2, y: HEIGHT - 6, "text-anchor": "middle" }, "VAE-Seq (clips per bin)"),
  );
  for (let i = 0; i <= 4; i += 1) {
    const value = low + ((high - low) * i) / 4;
    children.push(
      s("line", { class: "axis", x1: x(value), x2: x(value), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 5 }),
      s("text", { x: x(value), y: MARGIN.top + plotH + 18, "text-anchor": "middle" }, value.toFixed(3)),
    );
  }
  const svg = s(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", "aria-labelledby": "histogram-title histogram-desc" },
    ...children,
  );
  container.replaceChildren(svg);
}
