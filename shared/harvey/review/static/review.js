// Review page of one Harvey run (harvey/review/page.py renders the page and inlines this script).
//
// Offsets. Feedback spans are Unicode code points into document_md, end exclusive (Python slicing);
// JavaScript strings count UTF-16 units. Every piece of draft text in #draft is an element with
// data-s (its code-point start) whose only child is a text node holding exactly that slice of
// document_md, so a DOM boundary point maps to a code point as data-s plus the code points before
// it inside the piece. Markdown syntax is never inside a piece, and a point between pieces snaps to
// the next piece's start (a span's start) or the previous piece's end (a span's end).
(() => {
  "use strict";

  const data = JSON.parse(document.getElementById("review-data").textContent);
  const docText = data.documentMd;
  const docPoints = Array.from(docText);
  const draft = document.getElementById("draft");
  const pieces = Array.from(draft.querySelectorAll("[data-s]"));
  const codePoints = (text) => {
    let count = 0;
    for (const _ of text) count += 1;
    return count;
  };
  const starts = pieces.map((el) => Number(el.dataset.s));
  const ends = pieces.map((el, i) => starts[i] + codePoints(el.textContent));
  const $ = (id) => document.getElementById(id);

  // --- DOM point <-> code point ----------------------------------------------------------------

  function compare(index, node, offset) {
    const range = document.createRange();
    range.selectNodeContents(pieces[index]);
    return range.comparePoint(node, offset); // -1 before the piece, 0 inside, 1 after
  }

  function pointToOffset(node, offset, edge) {
    if (!pieces.length) return 0;
    let low = 0;
    let high = pieces.length; // first piece the point is not after
    while (low < high) {
      const mid = (low + high) >> 1;
      if (compare(mid, node, offset) > 0) low = mid + 1;
      else high = mid;
    }
    if (low === pieces.length) return ends[pieces.length - 1];
    if (compare(low, node, offset) === 0) {
      const range = document.createRange();
      range.setStart(pieces[low], 0);
      range.setEnd(node, offset);
      return starts[low] + codePoints(range.toString());
    }
    return edge === "start" || low === 0 ? starts[low] : ends[low - 1];
  }

  function offsetToPoint(offset, edge) {
    let index = pieces.findIndex((_, i) => (edge === "start" ? offset < ends[i] : offset <= ends[i]));
    if (index < 0) index = pieces.length - 1;
    const node = pieces[index].firstChild;
    let left = Math.max(0, Math.min(offset, ends[index]) - starts[index]);
    let units = 0;
    for (const ch of node.data) {
      if (left-- <= 0) break;
      units += ch.length;
    }
    return [node, units];
  }

  function rangeFor(span) {
    const range = document.createRange();
    range.setStart(...offsetToPoint(span.start, "start"));
    range.setEnd(...offsetToPoint(span.end, "end"));
    return range;
  }

  const isSpace = (ch) => /\s/u.test(ch);

  function trimmed(start, end) {
    while (start < end && isSpace(docPoints[start])) start += 1;
    while (end > start && isSpace(docPoints[end - 1])) end -= 1;
    return start < end ? { start, end } : null;
  }

  function selectedSpan() {
    const selection = document.getSelection();
    if (!selection || !selection.rangeCount || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    if (!range.intersectsNode(draft)) return null;
    try {
      const start = pointToOffset(range.startContainer, range.startOffset, "start");
      const end = pointToOffset(range.endContainer, range.endOffset, "end");
      return trimmed(start, end);
    } catch (_error) {
      return null; // a point in another tree (a doctype, a detached node) is no passage of the draft
    }
  }

  const slice = (span) => docPoints.slice(span.start, span.end).join("");
  const shorten = (text, limit) => (text.length <= limit ? text : `${text.slice(0, limit - 1).trimEnd()}…`);

  // --- marking passages ------------------------------------------------------------------------

  const passage = $("passage");
  const where = $("passage-where");
  const labelSelect = $("mark-label");
  const suggestion = $("mark-suggestion");
  const state = { current: null, marks: [], missing: [], key: newKey() };

  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function paintHighlights() {
    if (!(window.CSS && CSS.highlights && window.Highlight)) return;
    CSS.highlights.set("harvey-marked", new Highlight(...state.marks.map(rangeFor)));
    CSS.highlights.set("harvey-current", new Highlight(...(state.current ? [rangeFor(state.current)] : [])));
  }

  function setCurrent(span, message) {
    state.current = span;
    if (span) {
      passage.value = slice(span);
      where.textContent = message || `Trecho de ${span.end - span.start} caracteres selecionado na minuta.`;
    } else {
      where.textContent = message || "Nenhum trecho selecionado.";
    }
    passage.dataset.span = span ? `${span.start}-${span.end}` : "";
    paintHighlights();
  }

  document.addEventListener("selectionchange", () => {
    const span = selectedSpan();
    if (span && !(state.current && state.current.start === span.start && state.current.end === span.end)) {
      setCurrent(span);
    }
  });

  const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  passage.addEventListener("input", () => {
    const words = passage.value.trim().split(/\s+/u).filter(Boolean);
    if (!words.length) {
      setCurrent(null);
      return;
    }
    const pattern = new RegExp(words.map(escapeRegExp).join("\\s+"), "gu");
    const found = Array.from(docText.matchAll(pattern));
    if (!found.length) {
      state.current = null;
      passage.dataset.span = "";
      where.textContent = "Texto não encontrado na minuta: copie-o exatamente ou selecione-o no texto.";
      paintHighlights();
      return;
    }
    const first = found[0];
    const start = codePoints(docText.slice(0, first.index));
    const span = { start, end: start + codePoints(first[0]) };
    const times = found.length > 1 ? ` Aparece ${found.length} vezes; foi usada a primeira.` : "";
    const value = passage.value;
    setCurrent(span, `Trecho encontrado na minuta.${times}`);
    passage.value = value; // keep what is being typed
  });

  function chip(list, text, detail, onRemove, removeLabel) {
    const item = document.createElement("li");
    const body = document.createElement("span");
    body.className = "chip-text";
    body.textContent = text;
    item.append(body);
    if (detail) {
      const extra = document.createElement("span");
      extra.className = "chip-detail";
      extra.textContent = detail;
      item.append(extra);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = "Remover";
    remove.setAttribute("aria-label", removeLabel);
    remove.addEventListener("click", onRemove);
    item.append(remove);
    list.append(item);
  }

  function renderMarks() {
    const list = $("marks");
    list.replaceChildren();
    state.marks.forEach((mark, i) => {
      const text = `${mark.label}: “${shorten(slice(mark), 90)}”`;
      const detail = mark.suggestion ? `Sugestão: ${shorten(mark.suggestion, 120)}` : "";
      chip(list, text, detail, () => {
        state.marks.splice(i, 1);
        renderMarks();
        announce(`Marca removida. ${state.marks.length} trecho(s) marcado(s).`);
      }, `Remover a marca ${i + 1}`);
    });
    paintHighlights();
  }

  function renderMissing() {
    const list = $("missing");
    list.replaceChildren();
    const names = new Map(Array.from($("missing-class").options, (o) => [o.value, o.textContent]));
    state.missing.forEach((source, i) => {
      chip(list, source.raw, names.get(source.class) || source.class, () => {
        state.missing.splice(i, 1);
        renderMissing();
      }, `Remover a fonte ausente ${i + 1}`);
    });
  }

  const announce = (text) => {
    where.textContent = text;
  };

  $("mark-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.current) {
      announce("Selecione um trecho na minuta (ou digite-o) antes de marcar.");
      passage.focus();
      return;
    }
    const mark = { start: state.current.start, end: state.current.end, label: labelSelect.value };
    const text = suggestion.value.trim();
    if (text) mark.suggestion = text;
    state.marks.push(mark);
    suggestion.value = "";
    passage.value = "";
    state.current = null;
    passage.dataset.span = "";
    renderMarks();
    announce(`Trecho marcado como “${mark.label}”. ${state.marks.length} trecho(s) marcado(s).`);
  });

  $("source-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = $("missing-raw").value.trim();
    if (!raw) {
      $("missing-raw").focus();
      return;
    }
    state.missing.push({ raw, class: $("missing-class").value });
    $("missing-raw").value = "";
    renderMissing();
  });

  // --- sentences the faithfulness report flagged --------------------------------------------------

  function claimMark(index) {
    return draft.querySelector(`mark[data-claim="${index}"]`);
  }

  document.querySelectorAll("[data-goto]").forEach((button) => {
    button.addEventListener("click", () => {
      const mark = claimMark(button.dataset.goto);
      if (!mark) return;
      mark.tabIndex = -1;
      mark.scrollIntoView({ block: "center" });
      mark.focus({ preventScroll: true });
    });
  });

  document.querySelectorAll("[data-mark-claim]").forEach((button) => {
    button.addEventListener("click", () => {
      const claim = data.claims[Number(button.dataset.markClaim)];
      const span = claim && trimmed(claim.start, claim.end);
      if (!span) return;
      setCurrent(span, "Frase selecionada. Escolha o problema e clique em “Marcar trecho”.");
      if (!claim.supported) labelSelect.value = "afirmação sem suporte";
      const mark = claimMark(button.dataset.markClaim);
      if (mark) mark.scrollIntoView({ block: "center" });
      labelSelect.focus();
    });
  });

  // --- sources behind each [n] -------------------------------------------------------------------

  const popover = $("source-popover");
  const popoverBody = $("source-popover-body");
  const popoverTitle = $("source-popover-title");
  const nativePopover = typeof popover.showPopover === "function";
  let opener = null;

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text) el.textContent = text;
    return el;
  }

  function fillSources(numbers) {
    popoverBody.replaceChildren();
    popoverTitle.textContent = numbers.length > 1 ? `Fontes ${numbers.map((n) => `[${n}]`).join(" ")}` : `Fonte [${numbers[0]}]`;
    for (const n of numbers) {
      const source = data.sources[String(n)];
      const block = element("section", "source");
      if (!source) {
        block.append(element("p", "muted", `A fonte [${n}] não está entre as citadas nesta minuta.`));
      } else {
        block.append(element("h3", "", `[${n}] ${source.label}`));
        if (source.title && source.title !== source.label) block.append(element("p", "source-title", source.title));
        if (source.vigencia) block.append(element("p", "vigencia", `Vigência: ${source.vigencia}`));
        block.append(element("blockquote", "", source.excerpt || "(sem trecho)"));
      }
      popoverBody.append(block);
    }
  }

  function place(button) {
    const box = button.getBoundingClientRect();
    const width = Math.min(440, window.innerWidth - 24);
    const left = Math.max(12, Math.min(box.left, window.innerWidth - width - 12));
    popover.style.width = `${width}px`;
    popover.style.left = `${left}px`;
    const height = popover.offsetHeight;
    const below = box.bottom + 8;
    const top = below + height <= window.innerHeight - 8 ? below : Math.max(8, box.top - height - 8);
    popover.style.top = `${top}px`;
  }

  function openSources(button) {
    if (opener && opener !== button) opener.setAttribute("aria-expanded", "false");
    opener = button;
    fillSources(button.dataset.cite.split(" ").filter(Boolean).map(Number));
    if (nativePopover) {
      if (!popover.matches(":popover-open")) popover.showPopover();
    } else {
      popover.classList.add("open");
    }
    place(button);
    button.setAttribute("aria-expanded", "true");
    popoverTitle.focus();
  }

  function closeSources() {
    if (nativePopover && popover.matches(":popover-open")) popover.hidePopover();
    else popover.classList.remove("open");
  }

  function closed() {
    if (!opener) return;
    opener.setAttribute("aria-expanded", "false");
    if (!document.activeElement || document.activeElement === document.body || popover.contains(document.activeElement)) {
      opener.focus();
    }
    opener = null;
  }

  draft.addEventListener("click", (event) => {
    const button = event.target.closest("button.cite");
    if (button) openSources(button);
  });
  popover.querySelector(".close").addEventListener("click", () => {
    closeSources();
    if (!nativePopover) closed();
  });
  if (nativePopover) {
    popover.addEventListener("toggle", (event) => {
      if (event.newState === "closed") closed();
    });
  } else {
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && popover.classList.contains("open")) {
        closeSources();
        closed();
      }
    });
  }

  // --- sending the feedback ----------------------------------------------------------------------

  const status = $("status");
  const send = $("send");
  const edited = $("edited");
  const original = docText.replace(/\r\n?/g, "\n"); // a textarea's value has \n line breaks only
  edited.value = docText;

  function say(text, kind) {
    status.textContent = text;
    status.className = `status ${kind || ""}`.trim();
  }

  function body(rating) {
    const payload = {
      run_id: data.runId,
      rating,
      error_spans: state.marks.map((m) => ({ ...m })),
      missing_sources: state.missing.map((m) => ({ ...m })),
      tags: data.tags,
    };
    const comment = $("comment").value.trim();
    if (comment) payload.comment = comment;
    if (edited.value !== original) payload.edited_text_md = edited.value;
    return payload;
  }

  const refusals = {
    401: "Este link de revisão não é válido. Peça um novo link.",
    403: "Este link de revisão expirou. Peça um novo link.",
    404: "Esta execução não foi encontrada.",
    409: "Esta revisão conflita com uma já enviada. Recarregue a página e tente de novo.",
    413: "A revisão é grande demais para ser enviada de uma vez.",
    429: "Muitos envios em pouco tempo. Aguarde alguns instantes e tente de novo.",
  };

  async function submit(event) {
    event.preventDefault();
    const checked = document.querySelector('input[name="rating"]:checked');
    if (!checked) {
      say("Escolha uma avaliação (Boa, Neutra ou Ruim) antes de enviar.", "error");
      document.querySelector('input[name="rating"]').focus();
      return;
    }
    send.disabled = true;
    say("Enviando…");
    let response;
    try {
      response = await fetch(data.feedbackUrl, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Authorization: `Bearer ${data.token}`,
          "Idempotency-Key": state.key,
        },
        body: JSON.stringify(body(Number(checked.value))),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (_error) {
      say("Sem conexão com o servidor. Suas marcas foram mantidas; tente enviar de novo.", "error");
      send.disabled = false;
      return;
    }
    let answer = {};
    try {
      answer = await response.json();
    } catch (_error) {
      answer = {};
    }
    send.disabled = false;
    if (response.ok) {
      state.key = newKey();
      state.marks = [];
      state.missing = [];
      renderMarks();
      renderMissing();
      say(`Revisão registrada${answer.id ? ` (nº ${answer.id})` : ""}. Obrigado!`, "ok");
      return;
    }
    const detail = answer.error && answer.error.message ? ` (${answer.error.message})` : "";
    say(refusals[response.status] || `Não foi possível enviar a revisão: erro ${response.status}${detail}.`, "error");
  }

  $("feedback-form").addEventListener("submit", submit);
  document.documentElement.dataset.ready = "true";
})();
