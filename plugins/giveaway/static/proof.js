// The giveaway proof page's Verify: recompute commitment, entries hash and picks with WebCrypto (docs/giveaways.md).
(function () {
  "use strict";
  const root = document.querySelector("[data-giveaway-proof]");
  if (!root) return;
  const g = JSON.parse(document.getElementById("giveaway-data").textContent);
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));
  const sha = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const cat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; };
  const byteSort = (a, b) => (a < b ? -1 : a > b ? 1 : 0);  // ids are ASCII: code-unit order is byte order

  async function check(d) {
    if (!d.seed) return `draw ${d.number}: not drawn yet (the seed is revealed after the countdown)`;
    const seed = unhex(d.seed);
    if (hex(await sha(seed)) !== d.commitment) return `draw ${d.number}: SHA-256(seed) does not match the commitment`;
    const pool = d.pool.slice().sort(byteSort);
    const ehash = await sha(new TextEncoder().encode(pool.join("\n")));
    if (hex(ehash) !== d.entries_hash) return `draw ${d.number}: the entries hash does not match the entry list`;
    const picked = [];
    for (let i = 1; i <= Math.min(d.picks, d.pool.length); i++) {
      const idx = new Uint8Array(4); new DataView(idx.buffer).setUint32(0, i);
      const n = BigInt("0x" + hex(await sha(cat(seed, ehash, idx)))) % BigInt(pool.length);
      picked.push(pool.splice(Number(n), 1)[0]);
    }
    const claimed = d.winners.map((w) => w.code);
    if (picked.join() !== claimed.join()) return `draw ${d.number}: recomputed winners ${picked.join(", ")} differ from ${claimed.join(", ")}`;
    return null;
  }

  root.querySelector("[data-verify]").addEventListener("click", async () => {
    const out = root.querySelector("[data-verify-result]");
    const problems = [];
    for (const d of g.draws) { const p = await check(d); if (p) problems.push(p); }
    out.hidden = false;
    out.className = problems.length ? "alert alert-error" : "alert alert-ok";
    out.textContent = problems.length ? problems.join("; ") : `Verified: ${g.draws.length === 1 ? "the draw checks" : "all " + g.draws.length + " draws check"} out (commitment, entries hash and every winner).`;
  });
  for (const el of root.querySelectorAll("[data-time]")) el.textContent = "committed " + LMS.time(Number(el.dataset.time));
})();
