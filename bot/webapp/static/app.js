/* Magic Pin Mini App (docs/miniapp.md). Plain JavaScript, no build step, nothing fetched but
   this page's own API (and Telegram's telegram-web-app.js when opened inside Telegram).

   Gestures on the photo: tap = point (➕, or ➖ when the mode button is on), long press =
   ➖ point, one-finger drag = box, two fingers = pinch-zoom and pan (mouse: wheel zooms).
   After every input the server segments and the outline is drawn over the photo.

   A confirm-box task shows the model's box instead: drag a corner or a side to fit it, drag
   inside it to move it, drag outside it to draw a new one; Keep answers "correct" for the box
   as it came and sends the drawn box otherwise (the server decides which, docs/miniapp.md). */
(function () {
  "use strict";

  var TEXTS = JSON.parse(document.getElementById("texts").textContent);
  var COLORS = [[30, 144, 255], [255, 140, 0], [192, 60, 255]];
  var TELEGRAM_PLATFORMS = ["android", "android_x", "ios", "tdesktop", "macos", "weba", "webk", "web", "unigram"];
  var LONG_PRESS_MS = 550;
  var MOVE_PX = 10;

  var query = new URLSearchParams(location.search);
  var fragment = new URLSearchParams(location.hash.slice(1));
  var $ = function (id) { return document.getElementById(id); };
  var canvas = $("canvas");
  var ctx = canvas.getContext("2d");

  var tg = null;
  var initData = "";
  var lang = "ko";
  var S = {
    task: null, img: null, w: 0, h: 0,
    inputs: [],          // {kind: "point", x, y, pos} | {kind: "box", x0, y0, x1, y1}; image pixels
    negative: false,
    candidates: [],      // {runs, area, solid}
    cand: 0,
    initial: null,       // confirm-mask: the mask the task came with (solid canvas)
    seq: 0, busy: false, saving: false,
    more: false,         // the alternatives of a later tap are being fetched
    slots: 0,            // numbered buttons last shown: placeholders while the alternatives come
    base: 0,             // the pin's outline the worker chose before adding points: they refine it
    view: { scale: 1, ox: 0, oy: 0, fit: 1 },
    preview: null,       // the box being dragged
    pendingSince: null,
    box: null,           // confirm-box: the box as drawn now {x0, y0, x1, y1}, image pixels
    origBox: null,       // ... as the model predicted it
    others: [],          // ... the image's other predicted boxes (dimmed context)
    boxHistory: [],      // ... earlier boxes, for undo
  };
  var HANDLE_PX = 26;    // a corner or side within this many screen pixels of a touch is grabbed
  // Read by the browser tests and the benchmark: tap-to-drawn times and the page's state.
  var probe = window.__miniapp = { timings: [], state: "loading", errors: [] };

  function T(key, values) {
    var table = TEXTS[lang] || TEXTS.ko;
    var text = table[key] || (TEXTS.ko || {})[key] || key;
    if (values) Object.keys(values).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    return text;
  }

  function setState(name) {
    probe.state = name;
    document.body.dataset.state = name;
  }

  // ---------------------------------------------------------------- Telegram or a plain page
  function inTelegramClient() {
    var platform = fragment.get("tgWebAppPlatform") || "";
    return !!window.TelegramWebviewProxy || TELEGRAM_PLATFORMS.indexOf(platform) >= 0;
  }

  function loadTelegramScript(done) {
    if (!inTelegramClient()) { done(); return; }
    var script = document.createElement("script");
    var finished = false;
    var finish = function () { if (!finished) { finished = true; done(); } };
    script.src = "https://telegram.org/js/telegram-web-app.js";
    script.onload = finish;
    script.onerror = finish;
    setTimeout(finish, 4000);
    document.head.appendChild(script);
  }

  function applyTheme(params) {
    if (!params) return;
    var root = document.documentElement.style;
    Object.keys(params).forEach(function (key) {
      root.setProperty("--tg-theme-" + key.replace(/_/g, "-"), params[key]);
    });
  }

  function setupLaunch() {
    var webApp = window.Telegram && window.Telegram.WebApp;
    if (webApp && webApp.initData) {
      tg = webApp;
      initData = webApp.initData;
      document.body.classList.add("in-telegram");
      applyTheme(webApp.themeParams);
      webApp.ready();
      webApp.expand();
      if (webApp.onEvent) webApp.onEvent("themeChanged", function () { applyTheme(webApp.themeParams); });
      webApp.MainButton.onClick(keep);
      webApp.BackButton.onClick(undo);
    } else {
      initData = fragment.get("tgWebAppData") || "";
      try { applyTheme(JSON.parse(fragment.get("tgWebAppThemeParams") || "null")); } catch (e) { /* no theme */ }
    }
    try {
      var user = JSON.parse(new URLSearchParams(initData).get("user") || "{}");
      lang = /^en/i.test(user.language_code || navigator.language || "") ? "en" : "ko";
    } catch (e) { lang = /^en/i.test(navigator.language || "") ? "en" : "ko"; }
    document.documentElement.lang = lang;
  }

  function haptic(kind) {
    if (!tg || !tg.HapticFeedback) return;
    if (kind === "success" || kind === "error") tg.HapticFeedback.notificationOccurred(kind);
    else tg.HapticFeedback.impactOccurred(kind || "light");
  }

  // ---------------------------------------------------------------- API
  function api(method, path, body) {
    var options = { method: method, headers: { Authorization: "tma " + initData } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok || data.ok === false) {
          var err = new Error(data.message || data.error || ("HTTP " + response.status));
          err.status = response.status;
          err.code = data.error;
          throw err;
        }
        return data;
      });
    });
  }

  function loadImage(url) {
    return fetch(url, { headers: { Authorization: "tma " + initData } }).then(function (response) {
      if (!response.ok) {
        var err = new Error(T("error")); err.status = response.status; throw err;
      }
      return response.blob();
    }).then(function (blob) {
      return new Promise(function (resolve, reject) {
        var img = new Image();
        img.onload = function () { resolve(img); };
        img.onerror = function () { reject(new Error(T("error"))); };
        img.src = URL.createObjectURL(blob);
      });
    });
  }

  // ---------------------------------------------------------------- masks
  function solidCanvas(runs, w, h, color) {
    var c = document.createElement("canvas");
    c.width = w; c.height = h;
    var cx = c.getContext("2d");
    var image = cx.createImageData(w, h);
    var data = image.data;
    var pos = 0, on = false, r = color[0], g = color[1], b = color[2];
    for (var i = 0; i < runs.length; i++) {
      var end = Math.min(pos + runs[i], w * h);
      if (on) {
        for (var p = pos; p < end; p++) {
          var o = p * 4;
          data[o] = r; data[o + 1] = g; data[o + 2] = b; data[o + 3] = 255;
        }
      }
      pos = end; on = !on;
    }
    cx.putImageData(image, 0, 0);
    return c;
  }

  var ring = document.createElement("canvas");
  function drawMask(solid, color) {
    var v = S.view, dpr = window.devicePixelRatio || 1;
    ring.width = canvas.width; ring.height = canvas.height;
    var rc = ring.getContext("2d");
    var k = 2.5 * dpr;
    rc.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    [[k, 0], [-k, 0], [0, k], [0, -k]].forEach(function (d) {
      rc.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox + d[0], dpr * v.oy + d[1]);
      rc.drawImage(solid, 0, 0);
    });
    rc.globalCompositeOperation = "destination-out";
    rc.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    rc.drawImage(solid, 0, 0);
    rc.globalCompositeOperation = "source-over";
    ctx.save();
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    ctx.globalAlpha = 0.42;
    ctx.drawImage(solid, 0, 0);
    ctx.restore();
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(ring, 0, 0);
    ctx.restore();
  }

  // ---------------------------------------------------------------- drawing
  function resize() {
    var dpr = window.devicePixelRatio || 1;
    var rect = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(rect.width * dpr));
    canvas.height = Math.max(1, Math.round(rect.height * dpr));
    fit();
    draw();
  }

  function fit() {
    if (!S.img) return;
    var rect = canvas.getBoundingClientRect();
    var scale = Math.min(rect.width / S.w, rect.height / S.h);
    S.view = { scale: scale, fit: scale, ox: (rect.width - S.w * scale) / 2, oy: (rect.height - S.h * scale) / 2 };
  }

  function toScreen(x, y) { return [S.view.ox + x * S.view.scale, S.view.oy + y * S.view.scale]; }
  // Where image pixel (x, y) is in the window (tests and the benchmark tap there).
  probe.clientPoint = function (x, y) {
    var rect = canvas.getBoundingClientRect(), s = toScreen(x, y);
    return [rect.left + s[0], rect.top + s[1]];
  };
  probe.task = function () {
    return S.task && { assignment_id: S.task.assignment_id, type: S.task.type, w: S.w, h: S.h, candidates: S.candidates.length,
      areas: S.candidates.map(function (c) { return c.area; }), inputs: S.inputs.length, base: S.base, box: S.box && [S.box.x0, S.box.y0, S.box.x1, S.box.y1], boxChanged: boxChanged(), scale: S.view.scale };
  };
  function toImage(sx, sy) { return [(sx - S.view.ox) / S.view.scale, (sy - S.view.oy) / S.view.scale]; }

  function currentBox() {
    for (var i = S.inputs.length - 1; i >= 0; i--) if (S.inputs[i].kind === "box") return S.inputs[i];
    return null;
  }

  function draw() {
    var dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!S.img) return;
    var v = S.view;
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(S.img, 0, 0);
    if (isBox()) { drawBoxTask(); return; }
    var shown = S.candidates[S.cand];
    if (shown && shown.area > 0) drawMask(shown.solid, COLORS[S.cand % COLORS.length]);
    else if (!S.candidates.length && S.initial) drawMask(S.initial, COLORS[0]);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    var boxes = S.preview ? [S.preview] : [];
    var box = currentBox();
    if (box && !S.preview) boxes.push(box);
    boxes.forEach(function (b) {
      var a = toScreen(b.x0, b.y0), c = toScreen(b.x1, b.y1);
      ctx.lineWidth = 2.5;
      ctx.setLineDash([8, 6]);
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(a[0], a[1], c[0] - a[0], c[1] - a[1]);
      ctx.setLineDash([]);
    });
    S.inputs.forEach(function (p) {
      if (p.kind !== "point") return;
      var s = toScreen(p.x, p.y);
      ctx.beginPath();
      ctx.arc(s[0], s[1], 11, 0, Math.PI * 2);
      ctx.fillStyle = p.pos ? "#1fa35a" : "#d93b3b";
      ctx.fill();
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(s[0] - 5.5, s[1] - 1.5, 11, 3);
      if (p.pos) ctx.fillRect(s[0] - 1.5, s[1] - 5.5, 3, 11);
    });
  }

  // The box task's picture: the other predictions thin and grey, the outside of the box dimmed,
  // the box in the chat picture's yellow with a dark halo, round handles on its corners.
  function drawBoxTask() {
    var dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    S.others.forEach(function (o) {
      var a = toScreen(o[0], o[1]), c = toScreen(o[2], o[3]);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "rgba(235, 235, 235, 0.7)";
      ctx.setLineDash([4, 4]);
      ctx.strokeRect(a[0], a[1], c[0] - a[0], c[1] - a[1]);
      ctx.setLineDash([]);
    });
    var b = S.box;
    if (!b) return;
    var a = toScreen(b.x0, b.y0), c = toScreen(b.x1, b.y1);
    var rect = canvas.getBoundingClientRect();
    ctx.fillStyle = "rgba(0, 0, 0, 0.28)";
    ctx.beginPath();
    ctx.rect(0, 0, rect.width, rect.height);
    ctx.rect(a[0], a[1], c[0] - a[0], c[1] - a[1]);
    ctx.fill("evenodd");
    ctx.lineWidth = 5;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
    ctx.strokeRect(a[0], a[1], c[0] - a[0], c[1] - a[1]);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#ffd21f";
    ctx.strokeRect(a[0], a[1], c[0] - a[0], c[1] - a[1]);
    [[a[0], a[1]], [c[0], a[1]], [a[0], c[1]], [c[0], c[1]]].forEach(function (p) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], 9, 0, Math.PI * 2);
      ctx.fillStyle = "#ffffff";
      ctx.fill();
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#1c1c1e";
      ctx.stroke();
    });
  }

  function boxChanged() {
    if (!S.box || !S.origBox) return false;
    var keys = ["x0", "y0", "x1", "y1"];
    for (var i = 0; i < 4; i++) if (Math.abs(S.box[keys[i]] - S.origBox[keys[i]]) > 0.5) return true;
    return false;
  }

  // A small box opens zoomed in on it (the chat shows such a box in an inset): the box fills
  // about a third of the photo area, so a finger can grab its corners and the object it missed
  // is still in view around it.
  function zoomToBox() {
    if (!S.box) return;
    var rect = canvas.getBoundingClientRect(), v = S.view;
    var bw = (S.box.x1 - S.box.x0) * v.scale, bh = (S.box.y1 - S.box.y0) * v.scale;
    if (bw >= rect.width * 0.2 || bh >= rect.height * 0.2) return;
    var want = Math.min(rect.width * 0.34 / Math.max(1, S.box.x1 - S.box.x0), rect.height * 0.34 / Math.max(1, S.box.y1 - S.box.y0));
    var scale = Math.max(v.fit, Math.min(v.fit * 8, want));
    var cx = (S.box.x0 + S.box.x1) / 2, cy = (S.box.y0 + S.box.y1) / 2;
    v.scale = scale; v.ox = rect.width / 2 - cx * scale; v.oy = rect.height / 2 - cy * scale;
    // keep the photo filling the stage where it can (a box in a corner: no black band), less a
    // margin that keeps a corner handle on the photo's edge whole
    var m = 16;
    if (S.w * scale >= rect.width) v.ox = Math.min(m, Math.max(rect.width - S.w * scale - m, v.ox));
    if (S.h * scale >= rect.height) v.oy = Math.min(m, Math.max(rect.height - S.h * scale - m, v.oy));
  }

  // What a one-finger touch at screen point `at` grabs on the box: a corner, a side, the inside
  // (move), or nothing (a new box is drawn from there).
  function boxGrab(at) {
    var b = S.box;
    if (!b) return { part: "new" };
    var a = toScreen(b.x0, b.y0), c = toScreen(b.x1, b.y1);
    var nearX0 = Math.abs(at[0] - a[0]) <= HANDLE_PX, nearX1 = Math.abs(at[0] - c[0]) <= HANDLE_PX;
    var nearY0 = Math.abs(at[1] - a[1]) <= HANDLE_PX, nearY1 = Math.abs(at[1] - c[1]) <= HANDLE_PX;
    var inX = at[0] >= a[0] - HANDLE_PX && at[0] <= c[0] + HANDLE_PX, inY = at[1] >= a[1] - HANDLE_PX && at[1] <= c[1] + HANDLE_PX;
    if (!(inX && inY)) return { part: "new" };
    // the nearer of two sides when the box is small on screen
    var sx = nearX0 && nearX1 ? (Math.abs(at[0] - a[0]) <= Math.abs(at[0] - c[0]) ? "x0" : "x1") : nearX0 ? "x0" : nearX1 ? "x1" : null;
    var sy = nearY0 && nearY1 ? (Math.abs(at[1] - a[1]) <= Math.abs(at[1] - c[1]) ? "y0" : "y1") : nearY0 ? "y0" : nearY1 ? "y1" : null;
    if (sx || sy) return { part: "edge", x: sx, y: sy };
    return { part: "move" };
  }

  function dragBox(g, at) {
    var p = toImage(at[0], at[1]), s = toImage(g.start[0], g.start[1]);
    var o = g.from, b = { x0: o.x0, y0: o.y0, x1: o.x1, y1: o.y1 };
    var min = 4 / S.view.scale;  // never thinner than 4 screen pixels
    if (g.grab.part === "move") {
      var dx = Math.max(-o.x0, Math.min(S.w - o.x1, p[0] - s[0])), dy = Math.max(-o.y0, Math.min(S.h - o.y1, p[1] - s[1]));
      b = { x0: o.x0 + dx, y0: o.y0 + dy, x1: o.x1 + dx, y1: o.y1 + dy };
    } else if (g.grab.part === "edge") {
      var x = Math.max(0, Math.min(S.w, p[0])), y = Math.max(0, Math.min(S.h, p[1]));
      if (g.grab.x === "x0") b.x0 = Math.min(x, o.x1 - min);
      if (g.grab.x === "x1") b.x1 = Math.max(x, o.x0 + min);
      if (g.grab.y === "y0") b.y0 = Math.min(y, o.y1 - min);
      if (g.grab.y === "y1") b.y1 = Math.max(y, o.y0 + min);
    } else {
      b = clampBox(s, p);
    }
    S.box = b;
  }

  function undoBox() {
    if (!S.boxHistory.length || S.saving) return;
    S.box = S.boxHistory.pop();
    haptic("light");
    draw(); render();
  }

  // ---------------------------------------------------------------- UI state
  function isPin() { return S.task && S.task.type === "magic-pin"; }
  function isBox() { return S.task && S.task.type === "confirm-box"; }

  function canKeep() {
    if (!S.task || S.busy || S.saving) return false;
    if (isBox()) return !!S.box;
    if (S.candidates.length) return !!(S.candidates[S.cand] && S.candidates[S.cand].area > 0);
    return !isPin() && !S.inputs.length;  // confirm-mask: keep the mask as it came
  }

  function hint() {
    if (isBox()) return boxChanged() ? T("hint_box_changed") : T("hint_box");
    if (S.busy) return T("segmenting");
    if (S.negative) return T("hint_negative");
    if (S.candidates.length) return S.candidates[S.cand].area > 0 ? T("hint_keep") : T("hint_empty");
    return isPin() ? T("hint_pin") : T("hint_confirm");
  }

  function render() {
    $("hint").textContent = hint();
    $("hint").style.color = "";
    $("undo").disabled = (isBox() ? !S.boxHistory.length : !S.inputs.length) || S.saving;
    $("mode").hidden = isBox();
    $("class").hidden = !isBox();
    $("class").disabled = S.saving;
    var keepText = isBox() ? (boxChanged() ? T("box_save") : T("box_keep")) : T("keep");
    $("keep").textContent = keepText;
    $("mode").setAttribute("aria-pressed", S.negative ? "true" : "false");
    $("mode").textContent = S.negative ? T("remove_mode") : T("add_mode");
    $("none").disabled = S.saving;
    $("skip").disabled = S.saving;
    $("keep").disabled = !canKeep();
    $("busy").hidden = !S.busy;
    var box = $("candidates");
    box.textContent = "";
    if (S.more && S.candidates.length === 1) {
      // A later tap's mask is drawn and its alternatives are on their way: placeholders keep the
      // row's shape, so Undo and the mode button do not jump twice under the worker's thumb.
      for (var k = 0; k < (S.slots || 3); k++) {
        var slot = document.createElement("span");
        slot.className = "cand-slot";
        slot.setAttribute("aria-hidden", "true");
        slot.textContent = k === 0 ? "1" : "\u2026";
        if (k === 0) { slot.style.background = "rgb(" + COLORS[0].join(",") + ")"; slot.style.color = "#fff"; }
        box.appendChild(slot);
      }
    } else if (S.candidates.length > 1) {
      S.slots = S.candidates.length;  // as many placeholders next time
      S.candidates.forEach(function (c, i) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "cand";
        b.setAttribute("role", "radio");
        b.setAttribute("aria-checked", i === S.cand ? "true" : "false");
        b.setAttribute("aria-label", T("candidate", { number: i + 1 }));
        b.textContent = String(i + 1);
        var col = COLORS[i % COLORS.length];
        b.style.background = "rgb(" + col.join(",") + ")";
        b.style.color = "#fff";
        b.disabled = c.area <= 0;
        b.addEventListener("click", function () { S.cand = i; haptic("light"); render(); draw(); });
        box.appendChild(b);
      });
    }
    if (tg) {
      if (canKeep()) { tg.MainButton.setText(keepText); tg.MainButton.show(); tg.MainButton.enable(); }
      else if (S.task) { tg.MainButton.setText(keepText); tg.MainButton.show(); tg.MainButton.disable(); }
      if (isBox() ? S.boxHistory.length : S.inputs.length) tg.BackButton.show(); else tg.BackButton.hide();
    }
  }

  function showError(message) {
    $("hint").textContent = message;
    $("hint").style.color = "var(--danger)";
    probe.errors.push(message);
  }

  function notice(text, sub) {
    $("notice-text").textContent = text;
    $("notice-sub").textContent = sub || "";
    $("notice").hidden = false;
  }

  // ---------------------------------------------------------------- inputs
  function addInput(input) {
    if (S.saving) return;
    // the first point after a pin's outlines refines the one the worker has chosen
    var pinShown = !currentBox() && S.candidates.length > 1 && S.inputs.length &&
      S.inputs.filter(function (p) { return p.kind === "point" && p.pos; }).length === 1 &&
      S.inputs[S.inputs.length - 1].kind === "point" && S.inputs[S.inputs.length - 1].pos;
    if (pinShown && input.kind === "point") S.base = S.cand;
    S.inputs.push(input);
    S.pendingSince = performance.now();
    haptic(input.kind === "point" && !input.pos ? "medium" : "light");
    draw();
    segment();
  }

  function undo() {
    if (isBox()) { undoBox(); return; }
    if (!S.inputs.length || S.saving) return;
    S.inputs.pop();
    if (S.inputs.length <= 1) S.base = 0;
    haptic("light");
    S.pendingSince = performance.now();
    segment();
  }

  function payload() {
    var points = [], box = currentBox();
    S.inputs.forEach(function (p) {
      if (p.kind === "point") points.push([p.x / Math.max(1, S.w - 1), p.y / Math.max(1, S.h - 1), p.pos]);
    });
    return {
      a: S.task.assignment_id,
      points: points,
      box: box ? [box.x0 / S.w, box.y0 / S.h, box.x1 / S.w, box.y1 / S.h] : null,
      base: S.base,
    };
  }

  function segment() {
    if (S.busy || S.more) { S.dirty = true; return; }  // one request at a time: the newest inputs go next
    S.dirty = false;
    var body = payload();
    var seq = ++S.seq;
    var since = S.pendingSince;
    var hasPositive = body.points.some(function (p) { return p[2]; });
    if (!body.points.length && !body.box) {
      S.candidates = []; S.cand = 0; S.busy = false;
      draw(); render(); setState("ready");
      return;
    }
    if (!hasPositive && !body.box && !S.initial) {  // only ➖ points so far: wait for a ➕ or a box
      // (a confirm-mask's ➖ points trim its own mask: the server seeds inside it)
      S.candidates = []; S.busy = false;
      draw(); render(); setState("ready");
      return;
    }
    S.busy = true; setState("segmenting"); render();
    api("POST", "api/segment", body).then(function (data) {
      if (S.dirty) { S.busy = false; segment(); return; }  // inputs changed meanwhile: segment those
      if (seq !== S.seq) return;
      S.candidates = outlines(data);
      S.cand = 0; S.busy = false;
      draw(); render();
      if (data.more) alternatives(body, seq);
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          if (seq !== S.seq) return;
          if (since !== null) probe.timings.push({ ms: performance.now() - since, server_ms: data.server_ms, server_cpu_ms: data.server_cpu_ms, outlines: data.candidates.length });
          setState("mask");
        });
      });
    }).catch(function (err) {
      S.busy = false;
      if (S.dirty) { segment(); return; }
      if (seq !== S.seq) return;
      render();
      failed(err);
    });
  }

  // The outlines of a segment answer, each in its colour, ready to draw.
  function outlines(data) {
    return data.candidates.map(function (c, i) {
      return { runs: c.runs, area: c.area, solid: solidCanvas(c.runs, S.w, S.h, COLORS[i % COLORS.length]) };
    });
  }

  // A later tap is answered with the refined mask alone (drawn at once); the other outlines
  // follow from a second request for the same inputs. Keep works meanwhile (it keeps the
  // first); a new tap waits for this request, as for any other, and then goes with the newest inputs.
  function alternatives(body, seq) {
    S.more = true;
    render();
    api("POST", "api/segment", Object.assign({}, body, { more: true })).then(function (data) {
      S.more = false;
      if (S.dirty) { segment(); return; }
      if (seq === S.seq && !S.saving && data.candidates.length > S.candidates.length) {
        S.candidates = outlines(data);
        draw();
      }
      render();
    }).catch(function () {
      S.more = false;  // the alternatives are optional: the refined mask stays, Keep works
      if (S.dirty) segment(); else render();
    });
  }

  // Close the app: Telegram's own call inside Telegram; in a page that framed it (the browser
  // sandbox, Telegram's web clients without the script) the same postMessage event that
  // telegram-web-app.js sends there ({eventType: "web_app_close"}).
  function closeApp() {
    probe.closed = true;
    if (tg) { tg.close(); return; }
    if (window.parent && window.parent !== window) {
      window.parent.postMessage(JSON.stringify({ eventType: "web_app_close", eventData: {} }), "*");
    }
  }

  function failed(err) {
    setState("error");
    haptic("error");
    if (err.status === 401) { notice(T("unauthorized"), err.message); return; }
    if (err.status === 403 || err.status === 404 || (err.status === 409 && err.code !== "busy")) { notice(err.message || T("error")); return; }
    showError(err.message || T("error"));
  }

  // ---------------------------------------------------------------- answers
  function answer(action) {
    if (!S.task || S.saving) return;
    // a box task sends the box only when it moved; a mask task its inputs and picked outline
    var body = isBox() ? { a: S.task.assignment_id } : payload();
    body.action = action;
    if (isBox()) {
      if (action === "keep" && boxChanged()) body.box = [S.box.x0 / S.w, S.box.y0 / S.h, S.box.x1 / S.w, S.box.y1 / S.h];
    } else if (action === "keep") {
      if (!canKeep()) return;
      body.candidate = S.candidates.length ? S.cand : 0;
      if (!S.candidates.length) { body.points = []; body.box = null; }
    }
    S.saving = true; render(); setState("saving");
    if (tg) tg.MainButton.showProgress();
    api("POST", "api/answer", body).then(function (data) {
      if (tg) tg.MainButton.hideProgress();
      haptic("success");
      probe.answered = (probe.answered || 0) + 1;
      setState("saved");
      notice(data.message, data.next ? "" : T("next_in_chat"));
      setTimeout(function () {
        if (data.next) { $("notice").hidden = true; start(data.next); }
        else closeApp();
      }, data.next ? 900 : 1500);
    }).catch(function (err) {
      if (tg) tg.MainButton.hideProgress();
      S.saving = false; render();
      failed(err);
    });
  }

  function keep() { answer("keep"); }

  // ---------------------------------------------------------------- gestures
  var pointers = new Map();
  var gesture = null;

  function local(e) {
    var rect = canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  function inside(ix, iy) { return ix >= 0 && iy >= 0 && ix <= S.w && iy <= S.h; }

  function clampBox(a, b) {
    var x0 = Math.max(0, Math.min(a[0], b[0])), y0 = Math.max(0, Math.min(a[1], b[1]));
    var x1 = Math.min(S.w, Math.max(a[0], b[0])), y1 = Math.min(S.h, Math.max(a[1], b[1]));
    return { kind: "box", x0: x0, y0: y0, x1: x1, y1: y1 };
  }

  function pinchInfo() {
    var ps = Array.from(pointers.values());
    var dx = ps[0][0] - ps[1][0], dy = ps[0][1] - ps[1][1];
    return { dist: Math.max(1, Math.hypot(dx, dy)), mid: [(ps[0][0] + ps[1][0]) / 2, (ps[0][1] + ps[1][1]) / 2] };
  }

  function zoomAt(sx, sy, scale) {
    var v = S.view;
    scale = Math.max(v.fit, Math.min(v.fit * 8, scale));
    var ix = (sx - v.ox) / v.scale, iy = (sy - v.oy) / v.scale;
    v.ox = sx - ix * scale; v.oy = sy - iy * scale; v.scale = scale;
  }

  canvas.addEventListener("pointerdown", function (e) {
    if (!S.img || S.saving) return;
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    if (pointers.size === 1 && isBox()) {
      var here = local(e);
      gesture = { type: "boxdrag", start: here, grab: boxGrab(here), from: S.box, moved: false };
    } else if (pointers.size === 1) {
      var at = local(e);
      gesture = { type: "pending", start: at, timer: setTimeout(function () {
        if (gesture && gesture.type === "pending") {
          gesture.type = "done";
          var ip = toImage(at[0], at[1]);
          if (inside(ip[0], ip[1])) addInput({ kind: "point", x: ip[0], y: ip[1], pos: false });
        }
      }, LONG_PRESS_MS) };
    } else if (pointers.size === 2) {
      if (gesture && gesture.timer) clearTimeout(gesture.timer);
      if (gesture && gesture.type === "boxdrag") S.box = gesture.from;  // a second finger: zoom, not a drag
      var info = pinchInfo();
      gesture = { type: "pinch", dist: info.dist, mid: info.mid, scale: S.view.scale, ox: S.view.ox, oy: S.view.oy };
      S.preview = null;
    }
    e.preventDefault();
  });

  canvas.addEventListener("pointermove", function (e) {
    if (!pointers.has(e.pointerId) || !gesture) return;
    var at = local(e);
    pointers.set(e.pointerId, at);
    if (gesture.type === "pending" && Math.hypot(at[0] - gesture.start[0], at[1] - gesture.start[1]) > MOVE_PX) {
      clearTimeout(gesture.timer);
      gesture.type = "box";
    }
    if (gesture.type === "boxdrag") {
      if (!gesture.moved && Math.hypot(at[0] - gesture.start[0], at[1] - gesture.start[1]) <= 3) { e.preventDefault(); return; }
      gesture.moved = true;
      dragBox(gesture, at);
      draw();
    } else if (gesture.type === "box") {
      S.preview = clampBox(toImage(gesture.start[0], gesture.start[1]), toImage(at[0], at[1]));
      draw();
    } else if (gesture.type === "pinch" && pointers.size === 2) {
      var info = pinchInfo();
      S.view.scale = gesture.scale; S.view.ox = gesture.ox; S.view.oy = gesture.oy;
      zoomAt(gesture.mid[0], gesture.mid[1], gesture.scale * info.dist / gesture.dist);
      S.view.ox += info.mid[0] - gesture.mid[0];
      S.view.oy += info.mid[1] - gesture.mid[1];
      draw();
    }
    e.preventDefault();
  });

  function release(e) {
    if (!pointers.has(e.pointerId)) return;
    var at = local(e);
    pointers.delete(e.pointerId);
    if (!gesture) return;
    if (gesture.timer) clearTimeout(gesture.timer);
    if (gesture.type === "boxdrag") {
      var before = gesture.from;
      if (gesture.moved && S.box && ((S.box.x1 - S.box.x0) * S.view.scale < 8 || (S.box.y1 - S.box.y0) * S.view.scale < 8)) S.box = before;
      if (gesture.moved && before && S.box !== before) { S.boxHistory.push(before); haptic("light"); }
      gesture = null;
      draw(); render();
    } else if (gesture.type === "pending" && e.type === "pointerup") {
      var ip = toImage(at[0], at[1]);
      if (inside(ip[0], ip[1])) addInput({ kind: "point", x: ip[0], y: ip[1], pos: !S.negative });
      gesture = null;
    } else if (gesture.type === "box") {
      var box = S.preview;
      S.preview = null;
      gesture = null;
      if (box && (box.x1 - box.x0) * S.view.scale > 16 && (box.y1 - box.y0) * S.view.scale > 16) addInput(box);
      else draw();
    } else if (gesture.type === "pinch") {
      gesture = pointers.size ? { type: "ignore" } : null;
    } else if (!pointers.size) {
      gesture = null;
    }
  }
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  canvas.addEventListener("wheel", function (e) {
    if (!S.img) return;
    var at = local(e);
    zoomAt(at[0], at[1], S.view.scale * Math.exp(-e.deltaY * 0.0015));
    draw();
    e.preventDefault();
  }, { passive: false });

  $("undo").addEventListener("click", undo);
  $("mode").addEventListener("click", function () { S.negative = !S.negative; haptic("light"); render(); });
  $("keep").addEventListener("click", keep);
  $("none").addEventListener("click", function () { answer("none"); });
  $("skip").addEventListener("click", function () { answer("skip"); });
  $("class").addEventListener("click", function () { answer("class"); });
  window.addEventListener("resize", resize);

  // ---------------------------------------------------------------- start
  function labels() {
    document.title = T("title");
    $("undo").textContent = T("undo");
    $("keep").textContent = T("keep");
    $("none").textContent = isBox() ? T("box_none") : T("none");
    $("class").textContent = T("box_class");
    $("skip").textContent = T("skip");
  }

  function start(task) {
    S.task = task; lang = task.lang || lang;
    labels();
    S.inputs = []; S.candidates = []; S.cand = 0; S.negative = false; S.saving = false; S.busy = false; S.more = false; S.slots = 0; S.base = 0; S.initial = null;
    S.box = null; S.origBox = null; S.others = []; S.boxHistory = [];
    var head = task.object ? task.question + " · " + task.object : task.question;
    if (task.score !== null && task.score !== undefined) head += " (" + task.score + "%)";
    $("question").textContent = head;
    setState("loading");
    return loadImage(task.image.url).then(function (img) {
      S.img = img; S.w = task.image.w; S.h = task.image.h;
      if (task.mask) S.initial = solidCanvas(task.mask, S.w, S.h, COLORS[0]);
      if (task.box) {
        S.origBox = { x0: task.box[0], y0: task.box[1], x1: task.box[2], y1: task.box[3] };
        S.box = S.origBox;
        S.others = task.others || [];
      }
      $("app").classList.remove("loading");
      resize();
      if (S.box) { zoomToBox(); draw(); }
      render();
      setState("ready");
    });
  }

  function boot() {
    setupLaunch();
    labels();
    $("hint").textContent = T("loading");
    if (!initData) { setState("error"); notice(T("unauthorized")); return; }
    var a = query.get("a");
    api("GET", "api/task" + (a ? "?a=" + encodeURIComponent(a) : "")).then(function (data) { return start(data.task); }).catch(failed);
  }

  loadTelegramScript(boot);
})();
