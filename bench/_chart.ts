/**
 * The chart of `npm run bench:peers`: one SVG (no scripts, no fonts to fetch) with two bar panels
 * side by side, deliveries per second and server CPU time per delivery, a bar per server, coloured
 * by its runtime. Written by bench/peers.ts; docs/performance.md shows it.
 *
 * @module
 */

/** One bar of each panel. */
export interface ChartRow {
  /** The server, e.g. "chorus (Bun)". */
  label: string;
  runtime: "deno" | "bun" | "node";
  /** Deliveries per second. */
  rate: number;
  /** Server CPU microseconds per delivery. */
  cpu: number;
  /** Drawn in bold (chorus itself). */
  own?: boolean;
}

const colors = { deno: "#2a7f62", bun: "#c0772e", node: "#4a6fb5" } as const;
const names = { deno: "Deno", bun: "Bun", node: "Node.js" } as const;

/** Escapes text for XML. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A number as the table prints it: 2.74M, 301k, 1.25. */
export function short(x: number): string {
  if (!Number.isFinite(x)) return "-";
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${Math.round(x / 1e3)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x >= 10 ? x.toFixed(0) : x.toFixed(2);
}

/**
 * @param rows The servers, top to bottom.
 * @param title The chart's title.
 * @param caption A line under it (load, machine, date).
 * @returns The SVG document.
 */
export function peersChart(rows: ChartRow[], title: string, caption: string): string {
  const labelW = 150;
  const panelW = 300;
  const gap = 40;
  const rowH = 30;
  const top = 96;
  const width = labelW + 2 * panelW + gap + 30;
  const height = top + rows.length * rowH + 44;
  const out: string[] = [];
  const text = (x: number, y: number, s: string, attrs = "") =>
    out.push(`<text x="${x}" y="${y}"${attrs ? " " + attrs : ""}>${esc(s)}</text>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13" role="img">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
  );
  text(16, 26, title, `font-size="16" font-weight="600" fill="#111"`);
  text(16, 46, caption, `font-size="12" fill="#555"`);
  const panels = [
    { key: "rate" as const, head: "deliveries per second (more is better)" },
    { key: "cpu" as const, head: "server CPU µs per delivery (less is better)" },
  ];
  panels.forEach((panel, p) => {
    const x0 = labelW + 10 + p * (panelW + gap);
    const max = Math.max(...rows.map((r) => r[panel.key]).filter(Number.isFinite), 1e-9);
    text(x0, top - 14, panel.head, `font-weight="600" fill="#222"`);
    out.push(
      `<line x1="${x0}" y1="${top - 6}" x2="${x0}" y2="${top + rows.length * rowH}" stroke="#999" stroke-width="1"/>`,
    );
    rows.forEach((r, i) => {
      const v = r[panel.key];
      const y = top + i * rowH;
      const w = Number.isFinite(v) ? Math.max(1, (v / max) * (panelW - 64)) : 0;
      out.push(
        `<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="20" rx="2" fill="${colors[r.runtime]}"/>`,
      );
      const value = panel.key === "rate" ? short(v) : Number.isFinite(v) ? v.toFixed(2) : "-";
      text(x0 + w + 6, y + 15, value, `fill="#222"`);
    });
  });
  rows.forEach((r, i) => {
    text(labelW, top + i * rowH + 15, r.label, `text-anchor="end" fill="#111"${r.own ? ` font-weight="700"` : ""}`);
  });
  // the legend: one swatch per runtime shown
  let lx = labelW + 10;
  const ly = top + rows.length * rowH + 24;
  for (const rt of ["deno", "bun", "node"] as const) {
    if (!rows.some((r) => r.runtime === rt)) continue;
    out.push(`<rect x="${lx}" y="${ly - 11}" width="12" height="12" rx="2" fill="${colors[rt]}"/>`);
    text(lx + 18, ly, names[rt], `fill="#222"`);
    lx += 90;
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
