"use strict";
// A generated sequence's page (generate --export): where the prompt ends, marked in the head view's
// columns, over the matrix and in the note. It runs once page.js has drawn the page.
(function () {
  const data = JSON.parse(document.getElementById("attncli-data").textContent);
  const first = data.prompt_tokens;
  const $ = (id) => document.getElementById(id);

  function mark() {
    document.querySelectorAll(".token").forEach((token) => {
      const index = +token.dataset.index;
      token.classList.toggle("generated", index >= first);
      token.classList.toggle("prompt-end", index === first);
    });
    const generated = data.tokens.length - first;
    $("note").append(
      ` Tokens ${first} to ${data.tokens.length - 1} (${generated}, in italics) were generated after the prompt's ` +
        `${first} tokens; the dashed lines mark where the prompt ends.`
    );
    // Over the matrix: a dashed line under the last prompt row and after its last column, placed
    // again whenever the matrix is drawn at another size.
    const cells = $("cells"), rows = document.createElement("div"), columns = document.createElement("div");
    rows.className = columns.className = "prompt-end-line";
    $("matrix").style.position = "relative";
    $("matrix").append(rows, columns);
    new ResizeObserver(() => {
      const { cell, left, top } = window.attncliPage.matrix, T = data.tokens.length;
      Object.assign(rows.style, { left: `${left}px`, top: `${top + first * cell}px`, width: `${T * cell}px`, height: "0" });
      Object.assign(columns.style, { left: `${left + first * cell}px`, top: `${top}px`, width: "0", height: `${T * cell}px` });
    }).observe(cells);
    window.attncliPage.promptTokens = first;
  }

  if (document.body.dataset.ready === "true") mark();
  else new MutationObserver((_, observer) => {
    if (document.body.dataset.ready !== "true") return;
    observer.disconnect();
    mark();
  }).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
})();
