// macbdf single page: upload a video, show the verdict, scores and a timeline synced to playback.
// Plain JS, no framework, no build step, nothing loaded from other hosts.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const drop = $("drop"), input = $("file"), player = $("player"), canvas = $("chart");
  let limits = null;
  let current = null;      // the result being shown
  let objectUrl = null;
  let busy = false;

  // ---------------------------------------------------------------- limits / model info
  fetch("/healthz").then((r) => r.json()).then((h) => {
    limits = h.limits;
    $("limits").textContent = `up to ${Math.round(h.limits.max_upload_mb)} MB and ${Math.round(h.limits.max_duration_s)} s; any container FFmpeg reads`;
    $("model-info").textContent = h.model ? `(model: ${h.model})` : "";
  }).catch(() => { /* the page still works without it */ });

  // ---------------------------------------------------------------- file selection
  drop.addEventListener("click", (e) => { if (e.target.tagName !== "LABEL" && e.target !== input) input.click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { const f = e.dataTransfer && e.dataTransfer.files[0]; if (f) start(f); });
  input.addEventListener("change", () => { if (input.files[0]) start(input.files[0]); input.value = ""; });

  function showError(msg) {
    const box = $("error");
    box.textContent = msg;
    box.classList.remove("hidden");
  }
  function clearError() { $("error").classList.add("hidden"); $("error").textContent = ""; }
  function setProgress(label, pct) {
    $("progress-box").classList.remove("hidden");
    $("progress-label").textContent = label;
    if (pct === null) { $("progress").removeAttribute("value"); $("progress-pct").textContent = ""; }
    else { $("progress").value = pct; $("progress-pct").textContent = `${Math.round(pct)}%`; }
  }
  function hideProgress() { $("progress-box").classList.add("hidden"); }

  function start(file) {
    if (busy) { showError("A video is already being analysed; wait for it to finish."); return; }
    clearError();
    $("result").classList.add("hidden");
    if (file.size === 0) { showError("The file is empty."); return; }
    if (limits && file.size > limits.max_upload_mb * 1024 * 1024) {
      showError(`The file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.round(limits.max_upload_mb)} MB.`);
      return;
    }
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    upload(file);
  }

  // ---------------------------------------------------------------- upload (XHR: it reports upload progress)
  function upload(file) {
    busy = true;
    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/detect");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) setProgress("Uploading…", (100 * e.loaded) / e.total); };
    xhr.upload.onload = () => setProgress("Analysing…", null);
    xhr.onerror = () => { busy = false; hideProgress(); showError("Network error: the upload did not reach the server (too large, or the server is down)."); };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 200) { busy = false; hideProgress(); render(body); }
      else if (xhr.status === 202 && body.job_id) { poll(body.url || `/v1/jobs/${body.job_id}`); }
      else { busy = false; hideProgress(); showError(body.error || body.detail || `The server answered ${xhr.status}.`); }
    };
    setProgress("Uploading…", 0);
    xhr.send(form);
  }

  function poll(url) {
    setProgress("Queued…", null);
    const tick = () => {
      fetch(url).then((r) => r.json().then((b) => [r.status, b])).then(([status, b]) => {
        if (status !== 200) throw new Error(b.detail || `job lookup failed (${status})`);
        if (b.status === "done") {
          busy = false; hideProgress();
          if (b.result && b.result.error) showError(b.result.error);
          else render(b.result);
        } else {
          setProgress(b.status === "running" ? "Analysing…" : "Queued…", null);
          setTimeout(tick, 1000);
        }
      }).catch((e) => { busy = false; hideProgress(); showError(String(e.message || e)); });
    };
    setTimeout(tick, 500);
  }

  // ---------------------------------------------------------------- result
  const pct = (p) => (p === null || p === undefined ? "–" : `${(100 * p).toFixed(1)}%`);
  function bar(id, p) { $(id).style.width = `${Math.max(0, Math.min(1, p || 0)) * 100}%`; }

  const ABSTAIN_TEXT = {
    too_short: "the clip is too short to judge (a fraction of a second, a single image)",
    no_face: "no face was found and the audio cannot be used",
    video_too_small: "the picture is too small to see a face and the audio cannot be used",
    non_finite_input: "the audio holds invalid sample values (NaN/Inf) and the video shows no usable face",
    non_finite_output: "the model produced no valid score for this clip",
    nothing_decodable: "no frame of the video could be decoded",
  };

  // What the model is and is not good for, from its model card: shown beside every verdict.
  function renderCard(m) {
    const box = $("model-card");
    if (!m) { box.classList.add("hidden"); return; }
    box.classList.remove("hidden");
    box.dataset.recipe = m.recipe || "unknown";
    $("model-card-summary").textContent = m.summary || "";
    $("model-card-notfor").textContent = m.not_for && m.not_for.length ? `Not for: ${m.not_for.join("; ")}.` : "";
  }

  function render(r) {
    current = r;
    const v = $("verdict");
    v.textContent = r.verdict === "fake" ? "FAKE" : r.verdict === "real" ? "REAL" : r.verdict === "abstain" ? "NO VERDICT" : "?";
    v.className = `verdict ${r.verdict || ""}`;
    v.dataset.verdict = r.verdict || "";
    $("result-file").textContent = r.path + (r.duration ? ` · ${r.duration.toFixed(1)} s` : "");
    $("p-fake").textContent = pct(r.p_fake); bar("bar-fake", r.p_fake);
    $("p-audio").textContent = pct(r.p_audio_fake); bar("bar-audio", r.p_audio_fake);
    $("p-video").textContent = pct(r.p_video_fake); bar("bar-video", r.p_video_fake);
    let info = `Verdict at threshold ${r.threshold.toFixed(2)} on the overall probability` +
      (r.model && r.model.threshold_source ? ` (${r.model.threshold_source})` : "") +
      `. Audio and video probabilities come from the single-modality heads.`;
    if (r.verdict === "abstain") {
      info = `No verdict: ${ABSTAIN_TEXT[r.abstain_reason] || r.abstain_reason || "the clip cannot be judged"}.`;
    } else if (r.p_audio_fake === null && r.p_video_fake !== null) {
      info = `Judged on the video track only (no usable audio), at threshold ${r.threshold.toFixed(2)}.`;
    } else if (r.p_video_fake === null && r.p_audio_fake !== null) {
      info = `Judged on the audio track only (no usable face video), at threshold ${r.threshold.toFixed(2)}.`;
    }
    $("threshold-info").textContent = info;
    renderCard(r.model);
    const ul = $("segments");
    ul.textContent = "";
    if (!r.segments.length) { const li = document.createElement("li"); li.textContent = "none"; ul.appendChild(li); }
    for (const s of r.segments) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#";
      a.textContent = `${s.start.toFixed(2)} – ${s.end.toFixed(2)} s · ${s.modality} · score ${s.score.toFixed(2)}`;
      a.addEventListener("click", (e) => { e.preventDefault(); seek(s.start); });
      li.appendChild(a);
      ul.appendChild(li);
    }
    $("flags").textContent = r.flags.length ? r.flags.join(", ") : "none";
    const t = r.timings || {};
    $("timings").textContent = `decode+prepare ${(t.decode_prepare_s || 0).toFixed(2)} s, model ${(t.model_s || 0).toFixed(2)} s, total ${(t.total_s || 0).toFixed(2)} s`;
    $("player-note").classList.add("hidden");
    player.src = objectUrl || "";
    $("result").classList.remove("hidden");
    draw();
  }

  player.addEventListener("error", () => { if (current) $("player-note").classList.remove("hidden"); });
  function seek(t) { if (player.src) { try { player.currentTime = t; } catch (e) { /* not seekable */ } } draw(); }

  // ---------------------------------------------------------------- timeline chart (canvas)
  const PAD = { l: 36, r: 10, t: 10, b: 24 };
  function duration() {
    if (!current) return 1;
    const fs = current.frame_scores;
    return Math.max(Math.max(fs.audio.length, fs.video.length) / (fs.fps || 25), 1e-3);
  }
  function draw() {
    if (!current) return;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 900, cssH = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(cssW * dpr)) { canvas.width = Math.round(cssW * dpr); canvas.height = Math.round(cssH * dpr); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const W = cssW - PAD.l - PAD.r, H = cssH - PAD.t - PAD.b, D = duration();
    const x = (t) => PAD.l + (t / D) * W, y = (p) => PAD.t + (1 - p) * H;
    // segments
    const SEG = { audio: "rgba(217,130,43,0.20)", video: "rgba(43,123,217,0.18)", both: "rgba(194,59,59,0.18)" };
    for (const s of current.segments) {
      ctx.fillStyle = SEG[s.modality] || SEG.both;
      ctx.fillRect(x(s.start), PAD.t, Math.max(1, x(s.end) - x(s.start)), H);
    }
    // axes and grid
    ctx.strokeStyle = "#d0d5dd"; ctx.lineWidth = 1; ctx.fillStyle = "#667085"; ctx.font = "11px system-ui, sans-serif";
    for (const p of [0, 0.5, 1]) { ctx.beginPath(); ctx.moveTo(PAD.l, y(p)); ctx.lineTo(PAD.l + W, y(p)); ctx.stroke(); ctx.fillText(p.toFixed(1), 6, y(p) + 4); }
    const step = niceStep(D);
    for (let t = 0; t <= D + 1e-9; t += step) ctx.fillText(`${+t.toFixed(2)}s`, x(t) - 8, cssH - 6);
    // threshold
    ctx.setLineDash([5, 4]); ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(PAD.l, y(current.threshold)); ctx.lineTo(PAD.l + W, y(current.threshold)); ctx.stroke(); ctx.setLineDash([]);
    // frame scores
    const fs = current.frame_scores, fps = fs.fps || 25;
    line(ctx, fs.audio, fps, x, y, "#d9822b");
    line(ctx, fs.video, fps, x, y, "#2b7bd9");
    // playback cursor
    const ct = player.currentTime || 0;
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5; ctx.beginPath(); ctx.moveTo(x(Math.min(ct, D)), PAD.t); ctx.lineTo(x(Math.min(ct, D)), PAD.t + H); ctx.stroke();
    canvas.dataset.cursor = ct.toFixed(3);
  }
  function line(ctx, vals, fps, x, y, colour) {
    if (!vals.length) return;
    ctx.strokeStyle = colour; ctx.lineWidth = 1.6; ctx.beginPath();
    // centre of each frame's interval
    vals.forEach((p, i) => { const px = x((i + 0.5) / fps), py = y(p); if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py); });
    ctx.stroke();
  }
  function niceStep(D) {
    const raw = D / 8, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }
  canvas.addEventListener("click", (e) => {
    if (!current) return;
    const rect = canvas.getBoundingClientRect();
    const t = ((e.clientX - rect.left - PAD.l) / (rect.width - PAD.l - PAD.r)) * duration();
    seek(Math.max(0, Math.min(duration(), t)));
  });
  // The cursor follows playback: timeupdate is coarse (~4 Hz), so animate while playing.
  let raf = 0;
  const loop = () => { draw(); raf = player.paused ? 0 : requestAnimationFrame(loop); };
  player.addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(loop); });
  ["timeupdate", "seeked", "pause"].forEach((t) => player.addEventListener(t, draw));
  window.addEventListener("resize", draw);
})();
