// holdpose studio: the page. Plain JavaScript, no build step; every pose operation
// happens on the server (holdpose's own code), the page draws and sends small edits.
"use strict";

(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  const timeline = $("timeline"), tctx = timeline.getContext("2d");
  const PERSON_HUES = [200, 30, 120, 290, 60, 340, 170, 250];
  const HIT_RADIUS = 9; // screen pixels
  const stats = { firstPaint: null, lastStep: null, steps: [] };

  const S = {
    meta: null, T: 0, P: 0, K: 0,
    kp: null, sc: null, ids: null, interp: null, // typed arrays [T, P, K, (2)]
    conf: null, frame: 0, playing: false, keys: new Set(),
    sel: null, drag: null, drawn: -1, direction: 1, images: new Map(), current: {}, stepStart: null, busy: false,
  };

  // --- server -------------------------------------------------------------------

  async function api(path, body) {
    const opts = { headers: { "X-Holdpose-Token": token } };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    if (!res.ok) {
      const text = await res.text();
      let message = text;
      try { message = JSON.parse(text).error || text; } catch (e) { /* plain text */ }
      throw new Error(message);
    }
    return res;
  }

  async function post(action, body = {}) {
    try {
      const reply = await (await api(`api/${action}`, body)).json();
      if (reply.changed) await loadPoses(reply.changed[0], reply.changed[1]);
      updateButtons(reply); // after the poses, so "acknowledged" means drawn from the server's state
      return reply;
    } catch (err) {
      setStatus(err.message, true);
      await loadPoses(S.frame, S.frame + 1); // show the server's state again after a refused drag
      draw();
      return null;
    }
  }

  async function loadPoses(start, stop, response = null) {
    const buf = await (await (response || api(`api/poses?start=${start}&stop=${stop}`))).arrayBuffer();
    const n = stop - start, P = S.P, K = S.K;
    let offset = 0;
    const take = (Type, count) => { const a = new Type(buf, offset, count); offset += count * Type.BYTES_PER_ELEMENT; return a; };
    S.kp.set(take(Float32Array, n * P * K * 2), start * P * K * 2);
    S.sc.set(take(Float32Array, n * P * K), start * P * K);
    S.ids.set(take(Int32Array, n * P), start * P);
    S.interp.set(take(Uint8Array, n * P * K), start * P * K);
    for (let t = start; t < stop; t++) S.conf[t] = frameConfidence(t);
    drawTimeline();
  }

  async function frameImage(source, t) {
    const info = S.meta.videos[source];
    if (!info || t >= info.num_frames) return null;
    const key = `${source}/${t}`;
    if (!S.images.has(key)) {
      S.images.set(key, api(`api/frame/${key}`).then((r) => r.blob()).then(createImageBitmap)
        .catch(() => { S.images.delete(key); return null; }));
      while (S.images.size > 24) S.images.delete(S.images.keys().next().value);
    }
    return S.images.get(key);
  }

  // --- poses --------------------------------------------------------------------

  const at = (t, p, k) => (t * S.P + p) * S.K + k;
  const present = (t, p, k) => S.sc[at(t, p, k)] > 0;
  const xy = (t, p, k) => { const i = 2 * at(t, p, k); return [S.kp[i], S.kp[i + 1]]; };

  function frameConfidence(t) {
    // mean body-point score over the person slots in use; -1 when nobody is there
    const [b0, b1] = S.meta.layout.groups.body;
    let sum = 0, people = 0;
    for (let p = 0; p < S.P; p++) {
      if (S.ids[t * S.P + p] < 0) continue;
      people++;
      for (let k = b0; k < b1; k++) sum += S.sc[at(t, p, k)] / (b1 - b0);
    }
    return people ? sum / people : -1;
  }

  function nearestPresent(t, p, k) {
    for (let d = 1; d < S.T; d++) {
      if (t - d >= 0 && present(t - d, p, k)) return t - d;
      if (t + d < S.T && present(t + d, p, k)) return t + d;
    }
    return -1;
  }

  function ghosts(t) {
    // missing body and feet points, placed where the nearest frame has them
    const out = [];
    if (!$("show-missing").checked) return out;
    const [, feetEnd] = S.meta.layout.groups.feet || S.meta.layout.groups.body;
    for (let p = 0; p < S.P; p++) {
      if (S.ids[t * S.P + p] < 0) continue;
      for (let k = 0; k < feetEnd; k++) {
        if (present(t, p, k)) continue;
        const from = nearestPresent(t, p, k);
        if (from >= 0) out.push({ p, k, xy: xy(from, p, k) });
      }
    }
    return out;
  }

  // --- drawing ------------------------------------------------------------------

  function colour(p, side, light = 0) {
    const hue = PERSON_HUES[p % PERSON_HUES.length];
    const l = { left: 72, centre: 56, right: 38 }[side] + light;
    return `hsl(${hue}, 95%, ${l}%)`;
  }

  function isFace(k) { const f = S.meta.layout.groups.face; return f && k >= f[0] && k < f[1]; }
  function isHand(k) {
    const g = S.meta.layout.groups;
    return (g.left_hand && k >= g.left_hand[0] && k < g.left_hand[1]) || (g.right_hand && k >= g.right_hand[0] && k < g.right_hand[1]);
  }

  function drawPeople(c, t, scale, editable) {
    const L = S.meta.layout, showFace = $("show-face").checked;
    for (let p = 0; p < S.P; p++) {
      if (S.ids[t * S.P + p] < 0) continue;
      c.lineCap = "round";
      for (const [a, b] of L.limbs) {
        if (!present(t, p, a) || !present(t, p, b)) continue;
        const [xa, ya] = xy(t, p, a), [xb, yb] = xy(t, p, b);
        c.strokeStyle = colour(p, L.sides[b]);
        c.lineWidth = (isHand(b) ? 1.5 : 3.5) * scale;
        c.beginPath(); c.moveTo(xa * scale, ya * scale); c.lineTo(xb * scale, yb * scale); c.stroke();
      }
      for (let k = 0; k < S.K; k++) {
        if (!present(t, p, k) || (isFace(k) && !showFace)) continue;
        const [x, y] = xy(t, p, k);
        const r = (isFace(k) ? 1.6 : isHand(k) ? 2.2 : 4) * scale;
        const selected = editable && S.sel && S.sel.p === p && S.sel.k === k;
        c.fillStyle = isFace(k) ? "#f4f4f4" : colour(p, L.sides[k], 10);
        c.beginPath(); c.arc(x * scale, y * scale, selected ? r + 3 : r, 0, 2 * Math.PI); c.fill();
        if (S.interp[at(t, p, k)] || selected) {
          c.strokeStyle = selected ? "#ffffff" : "rgba(255,255,255,0.7)";
          c.lineWidth = selected ? 2 : 1;
          c.stroke();
        }
      }
      for (const name of ["left_wrist", "right_wrist", "left_ankle", "right_ankle"]) {
        const k = L.names.indexOf(name);
        if (k < 0 || !present(t, p, k)) continue;
        const [x, y] = xy(t, p, k);
        c.font = `bold ${Math.round(12 * scale)}px system-ui`;
        c.fillStyle = colour(p, L.sides[k], 15);
        c.fillText(name[0].toUpperCase(), x * scale + 6 * scale, y * scale - 6 * scale);
      }
    }
  }

  function drawGhosts(t) {
    ctx.setLineDash([3, 3]);
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#ffffff";
    ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
    for (const g of ghosts(t)) {
      ctx.beginPath(); ctx.arc(g.xy[0], g.xy[1], 7, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  function drawView(t) {
    const [W, H] = S.meta.size;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, W, H);
    const image = S.current.video;
    if (image && S.current.frame === t) ctx.drawImage(image, 0, 0, W, H);
    drawGhosts(t);
    drawPeople(ctx, t, 1, true);
  }

  function drawAnimation(t) {
    const info = S.meta.videos.animation;
    if (!info) return;
    const a = $("animation"), c = a.getContext("2d");
    c.fillStyle = "#000";
    c.fillRect(0, 0, a.width, a.height);
    if (S.current.animation && S.current.frame === t) c.drawImage(S.current.animation, 0, 0, a.width, a.height);
  }

  function draw() {
    drawView(S.frame);
    drawAnimation(S.frame);
    drawTimeline();
    describe();
  }

  function drawTimeline() {
    if (!S.meta) return;
    const dpr = window.devicePixelRatio || 1;
    const w = timeline.clientWidth, h = timeline.clientHeight;
    if (timeline.width !== Math.round(w * dpr)) { timeline.width = Math.round(w * dpr); timeline.height = Math.round(h * dpr); }
    tctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    tctx.fillStyle = "#111"; tctx.fillRect(0, 0, w, h);
    const adherence = S.meta.adherence, rowH = adherence ? 16 : 28, col = w / S.T;
    for (let t = 0; t < S.T; t++) {
      const c = S.conf[t];
      tctx.fillStyle = c < 0 ? "#333" : `hsl(${Math.round(120 * Math.min(1, c))}, 65%, 45%)`;
      tctx.fillRect(t * col, 4, Math.ceil(col), rowH);
      if (adherence) {
        const v = adherence[t];
        tctx.fillStyle = v == null ? "#333" : `hsl(${Math.round(270 - 75 * v)}, 60%, ${35 + 20 * v}%)`;
        tctx.fillRect(t * col, 6 + rowH, Math.ceil(col), 12);
      }
    }
    tctx.fillStyle = "#ffd24a";
    for (const k of S.keys) tctx.fillRect(k * col + col / 2 - 1.5, 0, 3, h);
    tctx.fillStyle = "#fff";
    tctx.fillRect(S.frame * col + col / 2 - 1, 0, 2, h);
  }

  function describe() {
    const t = S.frame, L = S.meta.layout;
    $("frame-label").textContent = `frame ${t} / ${S.T - 1}  (${(t / S.meta.fps).toFixed(2)} s)`;
    $("keyframe").classList.toggle("on", S.keys.has(t));
    if (S.sel) {
      const { p, k } = S.sel;
      const [x, y] = xy(t, p, k), s = S.sc[at(t, p, k)];
      $("selection").textContent = present(t, p, k)
        ? `person ${p}: ${L.names[k]} at (${x.toFixed(1)}, ${y.toFixed(1)}), score ${s.toFixed(2)}${S.interp[at(t, p, k)] ? ", interpolated" : ""}`
        : `person ${p}: ${L.names[k]} is missing in this frame`;
    }
    const missing = [];
    for (let p = 0; p < S.P; p++) {
      if (S.ids[t * S.P + p] < 0) continue;
      const names = [];
      for (let k = 0; k < S.K; k++) if (!present(t, p, k) && !isFace(k) && !isHand(k)) names.push(L.names[k]);
      const hands = [L.groups.left_hand, L.groups.right_hand, L.groups.face].filter(Boolean)
        .map(([a, b]) => { let n = 0; for (let k = a; k < b; k++) n += present(t, p, k) ? 0 : 1; return n; });
      missing.push(`person ${p} missing: ${names.join(", ") || "no body point"}` +
        (hands.length === 3 ? `; left hand ${hands[0]}, right hand ${hands[1]}, face ${hands[2]} points` : ""));
    }
    $("missing").textContent = missing.join(" · ") || "no person in this frame";
    $("keys").textContent = S.keys.size ? `keyframes: ${[...S.keys].sort((a, b) => a - b).join(", ")}` : "no keyframes marked";
  }

  // --- frames and time ------------------------------------------------------------

  async function show(t, { step = false } = {}) {
    t = Math.max(0, Math.min(S.T - 1, t));
    if (step) S.stepStart = performance.now();
    S.direction = t < S.frame ? -1 : 1;
    S.frame = t;
    const [video, animation] = await Promise.all([frameImage("video", t), frameImage("animation", t)]);
    if (S.frame !== t) return; // a later request took over
    S.current = { frame: t, video, animation };
    draw();
    S.drawn = t;
    const now = performance.now();
    if (stats.firstPaint === null) stats.firstPaint = now;
    if (S.stepStart !== null) { stats.lastStep = now - S.stepStart; stats.steps.push(stats.lastStep); S.stepStart = null; }
    window.dispatchEvent(new CustomEvent("studio:drawn", { detail: { frame: t } }));
    // fetch ahead in the direction of travel (stepping back too), so the next step finds its frame
    const ahead = S.direction < 0 ? [t - 1, t - 2] : [t + 1, t + 2];
    for (const next of ahead) if (next >= 0 && next < S.T) { frameImage("video", next); frameImage("animation", next); }
    if (S.playing) schedulePlay();
  }

  let playTimer = null, lastTick = 0;
  function schedulePlay() {
    clearTimeout(playTimer);
    const wait = Math.max(0, 1000 / S.meta.fps - (performance.now() - lastTick));
    playTimer = setTimeout(() => {
      lastTick = performance.now();
      if (S.frame >= S.T - 1) { setPlaying(false); return; }
      show(S.frame + 1);
    }, wait);
  }
  function setPlaying(on) {
    S.playing = on;
    $("play").textContent = on ? "⏸" : "▶";
    if (on) { lastTick = performance.now(); schedulePlay(); } else clearTimeout(playTimer);
  }

  // --- editing --------------------------------------------------------------------

  function toPose(event) {
    const r = canvas.getBoundingClientRect();
    return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
  }

  function hit(x, y) {
    const r = canvas.getBoundingClientRect(), radius = HIT_RADIUS * canvas.width / r.width;
    let best = null, bestD = radius * radius;
    const t = S.frame, showFace = $("show-face").checked;
    for (let p = 0; p < S.P; p++) {
      if (S.ids[t * S.P + p] < 0) continue;
      for (let k = 0; k < S.K; k++) {
        if (!present(t, p, k) || (isFace(k) && !showFace)) continue;
        const [px, py] = xy(t, p, k), d = (px - x) ** 2 + (py - y) ** 2 + (isFace(k) ? radius * radius / 4 : 0);
        if (d < bestD) { bestD = d; best = { p, k }; }
      }
    }
    if (best) return best;
    for (const g of ghosts(t)) {
      const d = (g.xy[0] - x) ** 2 + (g.xy[1] - y) ** 2;
      if (d < bestD) { bestD = d; best = { p: g.p, k: g.k, ghost: true }; }
    }
    return best;
  }

  canvas.addEventListener("pointerdown", async (event) => {
    canvas.focus();
    const [x, y] = toPose(event);
    const target = hit(x, y);
    S.sel = target ? { p: target.p, k: target.k } : null;
    if (target && target.ghost) {
      await edit({ op: "restore", frame: S.frame, person: target.p, keypoint: target.k });
      return;
    }
    if (target) {
      S.drag = { ...target, frame: S.frame, moved: false, dx: xy(S.frame, target.p, target.k)[0] - x,
                 dy: xy(S.frame, target.p, target.k)[1] - y };
      canvas.setPointerCapture(event.pointerId);
    }
    draw();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!S.drag) return;
    const [x, y] = toPose(event), i = 2 * at(S.drag.frame, S.drag.p, S.drag.k);
    S.kp[i] = x + S.drag.dx; S.kp[i + 1] = y + S.drag.dy;
    S.drag.moved = true;
    drawView(S.frame);
  });

  canvas.addEventListener("pointerup", async () => {
    const drag = S.drag;
    S.drag = null;
    if (!drag || !drag.moved) return;
    const [x, y] = xy(drag.frame, drag.p, drag.k);
    await edit({ op: "move", frame: drag.frame, person: drag.p, keypoint: drag.k, x, y });
  });

  async function edit(body) {
    const reply = await post("edit", body);
    if (reply) setStatus(`${body.op} done`);
    draw();
    return reply;
  }

  function needSelection(what) {
    if (!S.sel) { setStatus(`select a point first (${what})`, true); return false; }
    return true;
  }

  async function swap(whole) {
    if (!needSelection("swap")) return;
    const part = whole ? "body" : S.meta.layout.swap_parts[S.sel.k];
    await edit({ op: "swap", frame: S.frame, person: S.sel.p, part });
  }

  async function removePoint() {
    if (!needSelection("delete") || !present(S.frame, S.sel.p, S.sel.k)) return;
    await edit({ op: "delete", frame: S.frame, person: S.sel.p, keypoint: S.sel.k });
  }

  function toggleKeyframe() {
    if (S.keys.has(S.frame)) S.keys.delete(S.frame); else S.keys.add(S.frame);
    draw();
  }

  async function interpolate() {
    const keys = [...S.keys].sort((a, b) => a - b);
    if (keys.length < 2) { setStatus("mark two or more keyframes (K) first", true); return; }
    const reply = await post("edit", { op: "interpolate", keys, easing: $("easing").value });
    if (reply) setStatus(`interpolated frames ${keys[0]}..${keys[keys.length - 1]} (${$("easing").value})`);
    draw();
  }

  async function history(action) {
    const reply = await post(action);
    if (reply) setStatus(`${action} done`);
    draw();
  }

  async function save(format) {
    setStatus("saving…");
    const reply = await post("save", format ? { format } : {});
    if (reply) setStatus(`saved ${reply.saved}`);
  }

  async function exportMaps() {
    setStatus("rendering pose maps…");
    const reply = await post("export", { style: $("style").value });
    if (reply) setStatus(`exported ${reply.exported}`);
  }

  // --- interface ------------------------------------------------------------------

  function setStatus(text, error = false) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", error);
  }

  function updateButtons(status) {
    $("undo").disabled = !status.can_undo;
    $("redo").disabled = !status.can_redo;
    $("undo").title = status.undo_label ? `undo ${status.undo_label} (Ctrl+Z)` : "nothing to undo";
    $("redo").title = status.redo_label ? `redo ${status.redo_label} (Ctrl+Shift+Z)` : "nothing to redo";
    $("title").textContent = `${S.meta.name}${status.dirty ? " ●" : ""}`;
    document.title = `${status.dirty ? "● " : ""}${S.meta.name} · holdpose studio`;
  }

  function scrubTo(event) {
    const r = timeline.getBoundingClientRect();
    show(Math.floor((event.clientX - r.left) / r.width * S.T), { step: true });
  }
  timeline.addEventListener("pointerdown", (event) => { timeline.setPointerCapture(event.pointerId); scrubTo(event); });
  timeline.addEventListener("pointermove", (event) => { if (event.buttons & 1) scrubTo(event); });

  const click = (id, fn) => $(id).addEventListener("click", fn);
  click("play", () => setPlaying(!S.playing));
  click("prev", () => show(S.frame - 1, { step: true }));
  click("next", () => show(S.frame + 1, { step: true }));
  click("undo", () => history("undo"));
  click("redo", () => history("redo"));
  click("swap-limb", () => swap(false));
  click("swap-body", () => swap(true));
  click("delete", removePoint);
  click("keyframe", toggleKeyframe);
  click("interpolate", interpolate);
  click("save", () => save(null));
  click("save-as", () => save($("save-format").value));
  click("export", exportMaps);
  $("show-missing").addEventListener("change", draw);
  $("show-face").addEventListener("change", draw);
  window.addEventListener("resize", drawTimeline);

  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT") return;
    const ctrl = event.ctrlKey || event.metaKey, key = event.key;
    const actions = {
      ArrowRight: () => show(S.frame + (event.shiftKey ? 10 : 1), { step: true }),
      ArrowLeft: () => show(S.frame - (event.shiftKey ? 10 : 1), { step: true }),
      Home: () => show(0, { step: true }),
      End: () => show(S.T - 1, { step: true }),
      " ": () => setPlaying(!S.playing),
      k: toggleKeyframe, i: interpolate, s: () => swap(false), b: () => swap(true),
      Delete: removePoint, Backspace: removePoint,
    };
    let action = null;
    if (ctrl && key.toLowerCase() === "z") action = () => history(event.shiftKey ? "redo" : "undo");
    else if (ctrl && key.toLowerCase() === "y") action = () => history("redo");
    else if (ctrl && key.toLowerCase() === "s") action = () => save(null);
    else if (!ctrl && !event.altKey) action = actions[key.length === 1 ? key.toLowerCase() : key];
    if (action) { event.preventDefault(); action(); }
  });

  // --- start ----------------------------------------------------------------------

  async function start() {
    let meta, allPoses;
    try {
      allPoses = api("api/poses"); // every frame, fetched while the session is read
      allPoses.catch(() => {});
      meta = await (await api("api/session")).json();
    } catch (err) {
      setStatus(err.message, true);
      return;
    }
    S.meta = meta;
    S.T = meta.num_frames; S.P = meta.num_people; S.K = meta.num_keypoints;
    S.kp = new Float32Array(S.T * S.P * S.K * 2);
    S.sc = new Float32Array(S.T * S.P * S.K);
    S.ids = new Int32Array(S.T * S.P);
    S.interp = new Uint8Array(S.T * S.P * S.K);
    S.conf = new Float32Array(S.T);
    [canvas.width, canvas.height] = meta.size;
    $("canvas-caption").textContent = `${meta.name}: ${meta.num_frames} frames, ${meta.size[0]}×${meta.size[1]}, ` +
      `${meta.fps} fps${meta.videos.video ? "" : " (no video: blank canvas)"}`;
    if (meta.videos.animation) {
      $("animation-view").hidden = false;
      [$("animation").width, $("animation").height] = meta.videos.animation.size;
    }
    if (meta.reference) {
      const ref = await api("api/reference");
      $("reference").src = URL.createObjectURL(await ref.blob());
      $("reference").hidden = false;
    }
    $("adherence-legend").hidden = !meta.adherence;
    for (const [id, values] of [["easing", meta.easings], ["style", meta.styles]]) {
      for (const v of values) $(id).add(new Option(v, v));
    }
    $("easing").value = "linear";
    $("style").value = "openpose_full";
    $("save").title = `save to ${meta.paths.save} (Ctrl+S)`;
    $("save-as").title = `save as ${meta.paths.json} or ${meta.paths.npz}`;
    $("export").title = `render pose maps to ${meta.paths.export}`;
    updateButtons(meta);
    frameImage("video", 0); // start decoding while the poses load
    await loadPoses(0, S.T, allPoses);
    await show(0);
    setStatus(`${meta.name} loaded`);
  }

  window.studio = {
    stats, state: S,
    point: (t, p, k) => [...xy(t, p, k), S.sc[at(t, p, k)]],
    pointOnScreen: (p, k) => {
      const r = canvas.getBoundingClientRect(), [x, y] = xy(S.frame, p, k);
      return [r.left + x * r.width / canvas.width, r.top + y * r.height / canvas.height];
    },
    show, edit,
  };
  start();
})();
