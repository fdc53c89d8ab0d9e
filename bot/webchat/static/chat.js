// The browser sandbox: one simulated Telegram user chatting with the bot through the emulator.
// The chat is drawn from the emulator's state (GET /api/feed, a long poll); taps send callback
// queries through the emulator's control API (POST /api/tap). Plain JS, no dependencies.
"use strict";

(() => {
  const STORE = "crowdpin.webchat";
  const $ = (id) => document.getElementById(id);
  const els = {
    messages: $("messages"), scroll: $("scroll"), intro: $("intro"), start: $("start"), composer: $("composer"),
    text: $("text"), keyboard: $("keyboard"), toast: $("toast"), offline: $("offline"), lang: $("lang"),
    panel: $("panel"), panelFrame: $("panel-frame"), panelTitle: $("panel-title"), panelClose: $("panel-close"), kbToggle: $("kb-toggle"),
  };
  const state = {
    lang: document.documentElement.lang || "ko",
    texts: {},
    user: null, // {id, lang}
    version: null,
    rendered: new Map(), // message_id -> {key, el}
    polling: false,
    keyboardOpen: true,
    taskOnScreen: null,
  };

  const saved = (() => { try { return JSON.parse(localStorage.getItem(STORE) || "{}"); } catch { return {}; } })();
  const params = new URLSearchParams(location.search);
  if (params.get("lang")) state.lang = params.get("lang");
  else if (saved.lang) state.lang = saved.lang;
  function save() {
    localStorage.setItem(STORE, JSON.stringify({ lang: state.lang, user: state.user }));
  }

  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const response = await fetch(path, init);
    let payload = null;
    try { payload = await response.json(); } catch { payload = { ok: false, error: await response.text().catch(() => "") }; }
    if (!response.ok || !payload.ok) {
      const err = new Error((payload && payload.error) || response.statusText);
      err.status = response.status;
      throw err;
    }
    return payload;
  }

  // -- texts -----------------------------------------------------------------------------------
  async function loadTexts() {
    const payload = await api("GET", "/api/texts?lang=" + encodeURIComponent(state.lang));
    state.lang = payload.lang;
    state.texts = payload.texts;
    document.documentElement.lang = state.lang;
    document.title = state.texts.title;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = state.texts[el.dataset.t] || "";
    els.text.placeholder = state.texts.placeholder;
  }

  // -- rendering -------------------------------------------------------------------------------
  // Entities (bold, italic, code...) by UTF-16 offsets, as Telegram counts them; JS strings are UTF-16 too.
  function renderText(text, entities) {
    const frag = document.createDocumentFragment();
    if (!entities || !entities.length) { frag.append(text); return frag; }
    const cuts = new Set([0, text.length]);
    for (const e of entities) { cuts.add(e.offset); cuts.add(Math.min(text.length, e.offset + e.length)); }
    const points = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < points.length; i++) {
      const [from, to] = [points[i], points[i + 1]];
      let node = document.createTextNode(text.slice(from, to));
      for (const e of entities) {
        if (e.offset > from || e.offset + e.length < to) continue;
        const tag = { bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre", spoiler: "span",
          text_link: "a", url: "a", blockquote: "q" }[e.type];
        if (!tag) continue;
        const wrap = document.createElement(tag);
        if (e.type === "spoiler") { wrap.className = "spoiler"; wrap.onclick = () => wrap.classList.add("open"); }
        if (tag === "a") {
          wrap.href = e.type === "url" ? text.slice(e.offset, e.offset + e.length) : e.url;
          wrap.target = "_blank"; wrap.rel = "noopener";
        }
        wrap.append(node);
        node = wrap;
      }
      frag.append(node);
    }
    return frag;
  }

  function photoSize(sizes) {
    // the smallest size at least 800 px wide (sharp on a phone, light to load), else the largest
    const sorted = [...sizes].sort((a, b) => a.width - b.width);
    return sorted.find((s) => s.width >= 800) || sorted[sorted.length - 1];
  }

  function clock(date) {
    const d = new Date(date * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function buildMessage(m) {
    const box = document.createElement("div");
    box.className = "msg " + (m.from_bot ? "bot" : "me");
    box.dataset.id = m.message_id;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const content = m.text !== null && m.text !== undefined ? m.text : (m.caption || "");
    if (m.photo && m.photo.length) {
      bubble.classList.add("has-photo");
      if (!content) bubble.classList.add("no-caption");
      const size = photoSize(m.photo);
      const img = document.createElement("img");
      img.className = "photo";
      img.alt = "";
      img.width = size.width; img.height = size.height;
      img.style.aspectRatio = size.width + " / " + size.height;
      img.style.height = "auto";
      img.src = "/api/files/" + encodeURIComponent(size.file_id);
      img.addEventListener("load", () => stickToBottom());
      bubble.append(img);
    } else if (m.document) {
      const doc = document.createElement("div");
      doc.className = "text";
      doc.textContent = "📄 " + (m.document.file_name || "file");
      bubble.append(doc);
    }
    const text = document.createElement("div");
    text.className = "text";
    text.append(renderText(content, m.text !== null && m.text !== undefined ? m.entities : m.caption_entities));
    const meta = document.createElement("span");
    meta.className = "meta";
    if (m.edited) {
      const edited = document.createElement("span");
      edited.className = "edited";
      edited.textContent = state.texts.edited;
      meta.append(edited);
    }
    meta.append(clock(m.date));
    text.append(meta);
    bubble.append(text);
    box.append(bubble);
    const rows = (m.reply_markup && m.reply_markup.inline_keyboard) || [];
    if (rows.length) box.append(buildInlineKeyboard(m, rows));
    return box;
  }

  function buildInlineKeyboard(m, rows) {
    const kb = document.createElement("div");
    kb.className = "ikb";
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "ikb-row";
      for (const button of row) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "ib";
        b.textContent = button.text;
        if (button.callback_data !== undefined) {
          b.dataset.callback = button.callback_data;
          b.addEventListener("click", () => tap(m.message_id, button.callback_data, b));
        } else if (button.web_app) {
          b.dataset.webapp = button.web_app.url;
          b.insertAdjacentHTML("beforeend", '<span class="corner" aria-hidden="true">↗</span>');
          b.addEventListener("click", () => openWebApp(m.message_id, button));
        } else if (button.url) {
          b.insertAdjacentHTML("beforeend", '<span class="corner" aria-hidden="true">↗</span>');
          b.addEventListener("click", () => window.open(button.url, "_blank", "noopener"));
        } else {
          b.disabled = true;
        }
        line.append(b);
      }
      kb.append(line);
    }
    return kb;
  }

  function replyKeyboardOf(messages) {
    // The newest bot message that sets or removes a reply keyboard decides what is shown.
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i];
      if (!m.from_bot || !m.reply_markup) continue;
      if (m.reply_markup.keyboard) return m.reply_markup;
      if (m.reply_markup.remove_keyboard) return null;
    }
    return null;
  }

  function setKeyboardOpen(open) {
    state.keyboardOpen = open;
    els.keyboard.hidden = !open || !els.keyboard.childElementCount;
    els.kbToggle.hidden = !els.keyboard.childElementCount;
    els.kbToggle.classList.toggle("open", !els.keyboard.hidden);
  }
  els.kbToggle.addEventListener("click", () => { setKeyboardOpen(els.keyboard.hidden); stickToBottom(); });

  function renderReplyKeyboard(markup) {
    const key = markup ? JSON.stringify(markup.keyboard) : "";
    if (els.keyboard.dataset.key === key) return;
    els.keyboard.dataset.key = key;
    els.keyboard.replaceChildren();
    els.keyboard.hidden = !markup || !state.keyboardOpen;
    els.kbToggle.hidden = !markup;
    els.text.placeholder = (markup && markup.input_field_placeholder) || state.texts.placeholder;
    if (!markup) return;
    for (const row of markup.keyboard) {
      const line = document.createElement("div");
      line.className = "kb-row";
      for (const button of row) {
        const label = typeof button === "string" ? button : button.text;
        const b = document.createElement("button");
        b.type = "button";
        b.className = "kb";
        b.textContent = label;
        b.addEventListener("click", () => send(label));
        line.append(b);
      }
      els.keyboard.append(line);
    }
    els.kbToggle.classList.toggle("open", !els.keyboard.hidden);
  }

  function nearBottom() {
    const s = els.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }
  let stick = true;
  function stickToBottom() {
    if (!stick) return;
    // A task taller than the screen (photo + grid of cells) shows from its top: the photo is
    // what the worker looks at; Skip and Report are a scroll away, as in Telegram.
    const last = els.messages.lastElementChild;
    if (last && last.classList.contains("bot") && last.offsetHeight > els.scroll.clientHeight) {
      els.scroll.scrollTop = last.offsetTop - 6;
    } else {
      els.scroll.scrollTop = els.scroll.scrollHeight;
    }
  }
  els.scroll.addEventListener("scroll", () => { stick = nearBottom(); });

  function render(messages) {
    const seen = new Set();
    let previous = null;
    let grew = false;
    for (const m of messages) {
      if (m.deleted) continue;
      seen.add(m.message_id);
      const key = m.edit_count + "|" + (m.photo_file_id || "") + "|" + (m.text || m.caption || "").length + "|" + state.lang;
      const known = state.rendered.get(m.message_id);
      let el = known && known.el;
      if (!known || known.key !== key) {
        const fresh = buildMessage(m);
        if (el) el.replaceWith(fresh); else grew = true;
        el = fresh;
        state.rendered.set(m.message_id, { key, el });
      }
      const anchor = previous ? previous.nextSibling : els.messages.firstChild;
      if (el !== anchor) els.messages.insertBefore(el, anchor);
      previous = el;
    }
    for (const [id, { el }] of state.rendered) {
      if (!seen.has(id)) { el.remove(); state.rendered.delete(id); }
    }
    els.intro.hidden = messages.some((m) => !m.deleted);
    if (!els.intro.hidden) els.messages.prepend(els.intro);
    renderReplyKeyboard(replyKeyboardOf(messages));
    // The menu keyboard folds away while a task with its own buttons is on screen (more room for
    // the photo) and comes back when there is none; the ⌨ button toggles it, as in Telegram.
    const live = messages.filter((m) => !m.deleted);
    const newest = live[live.length - 1];
    const taskOnScreen = !!(newest && newest.from_bot && newest.reply_markup && newest.reply_markup.inline_keyboard);
    if (taskOnScreen !== state.taskOnScreen) { state.taskOnScreen = taskOnScreen; setKeyboardOpen(!taskOnScreen); }
    if (grew) stick = true;
    stickToBottom();
  }

  // -- actions ---------------------------------------------------------------------------------
  let toastTimer = null;
  function toast(text, alert) {
    els.toast.textContent = text;
    els.toast.classList.toggle("alert", !!alert);
    els.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { els.toast.hidden = true; }, alert ? 4000 : 2200);
  }

  async function tap(messageId, data, button) {
    button.classList.add("busy");
    try {
      const payload = await api("POST", "/api/tap", { user_id: state.user.id, message_id: messageId, data });
      if (payload.answer && payload.answer.text) toast(payload.answer.text, payload.answer.show_alert);
    } catch (err) {
      toast(state.texts.error);
    } finally {
      button.classList.remove("busy");
    }
  }

  async function send(text) {
    if (!state.user) return;
    try {
      await api("POST", "/api/send", { user_id: state.user.id, text });
    } catch (err) {
      toast(state.texts.error);
    }
  }

  async function openWebApp(messageId, button) {
    // The page server turns the button into the URL to open (the launch data a real client adds).
    let url = button.web_app.url;
    try {
      const payload = await api("POST", "/api/webapp", { user_id: state.user.id, message_id: messageId, url });
      url = payload.url;
    } catch (err) {
      toast(state.texts.error);
      return;
    }
    els.panelTitle.textContent = button.text;
    els.panelFrame.src = url;
    els.panel.hidden = false;
  }
  function closeWebApp() {
    els.panel.hidden = true;
    els.panelFrame.src = "about:blank";
  }
  els.panelClose.addEventListener("click", closeWebApp);
  // A Mini App in an iframe talks to its Telegram client by postMessage ({eventType, eventData}),
  // as telegram-web-app.js does in Telegram's web clients; closing is the one event a chat needs.
  window.addEventListener("message", (e) => {
    if (e.source !== els.panelFrame.contentWindow) return;
    let event = e.data;
    try { if (typeof event === "string") event = JSON.parse(event); } catch { return; }
    if (event && event.eventType === "web_app_close") closeWebApp();
  });
  els.panel.addEventListener("click", (e) => { if (e.target === els.panel) closeWebApp(); });

  // -- the chat's life -------------------------------------------------------------------------
  function showChat() {
    els.start.hidden = !!state.user;
    els.composer.hidden = !state.user;
  }

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    while (state.user) {
      const userId = state.user.id;
      const after = state.version === null ? "" : "&after_version=" + state.version;
      try {
        const feed = await api("GET", "/api/feed/" + userId + "?timeout=25" + after);
        if (!state.user || state.user.id !== userId) continue;
        els.offline.hidden = true;
        state.version = feed.version;
        render(feed.messages);
      } catch (err) {
        if (err.status === 403) { // the sandbox was restarted: this user no longer exists
          forgetUser();
          break;
        }
        els.offline.hidden = false;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    state.polling = false;
  }

  function forgetUser() {
    state.user = null;
    state.version = null;
    for (const { el } of state.rendered.values()) el.remove();
    state.rendered.clear();
    els.intro.hidden = false;
    renderReplyKeyboard(null);
    save();
    showChat();
  }

  els.start.addEventListener("click", async () => {
    els.start.disabled = true;
    try {
      const payload = await api("POST", "/api/users", { language_code: state.lang });
      state.user = { id: payload.user.id, lang: state.lang };
      save();
      showChat();
      poll();
      await send("/start");
    } catch (err) {
      toast(state.texts.error);
    } finally {
      els.start.disabled = false;
    }
  });

  els.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = els.text.value.trim();
    if (!text) return;
    els.text.value = "";
    send(text);
  });

  els.lang.addEventListener("click", async () => {
    state.lang = state.lang === "ko" ? "en" : "ko";
    save();
    await loadTexts();
    for (const entry of state.rendered.values()) entry.key = ""; // redraw "edited" marks in the new language
    if (state.user) await send("/language"); // the bot asks which language, as in Telegram
  });

  async function boot() {
    await loadTexts();
    if (saved.user && saved.user.id) state.user = saved.user;
    els.intro.hidden = false;
    showChat();
    if (state.user) poll();
  }
  boot();
})();
