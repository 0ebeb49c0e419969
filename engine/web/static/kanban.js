// Kanban: drag a card to another lane (SortableJS) or pick a lane in its select (keyboard); the
// move is POSTed with the CSRF token and saved by the server through the record engine. A refused
// move puts the card back where it was and shows the reason; a saved one updates the lane totals.
(() => {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const say = (text, refused) => {
    const status = document.getElementById("board-status");
    status.textContent = text;
    status.hidden = false;
    status.classList.toggle("refused", refused);
  };
  const updateTotals = (board, totals) => {
    for (const lane of board.querySelectorAll("[data-lane].lane")) {
      const total = totals[lane.dataset.lane];
      if (!total) continue;
      lane.querySelector("[data-count]").textContent = total.count;
      const sum = lane.querySelector("[data-sum]");
      if (sum && total.sum !== null) sum.textContent = total.sum;
    }
  };
  const move = async (board, card, to) => {
    const body = new URLSearchParams({id: card.dataset.id, to, version: card.dataset.version || "",
                                      back: board.dataset.back || "", csrf_token: csrf()});
    let answer = {ok: false, reason: ""};
    try {
      const response = await fetch(board.dataset.moveUrl, {method: "POST", body, credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}});
      answer = await response.json();
    } catch (error) {
      answer = {ok: false, reason: String(error)};
    }
    return answer;
  };
  const putBack = (card, from, index) => {
    const before = from.children[index] || null;
    from.insertBefore(card, before);
  };
  const settle = async (board, card, fromList, oldIndex) => {
    const toList = card.parentElement;
    const to = toList.dataset.lane;
    if (to === fromList.dataset.lane) return;
    card.classList.add("saving");
    const answer = await move(board, card, to);
    card.classList.remove("saving");
    const select = card.querySelector("[data-move]");
    if (answer.ok) {
      card.dataset.version = answer.version;
      if (select) select.value = to;
      updateTotals(board, answer.totals || {});
      say(answer.message, false);
    } else {
      putBack(card, fromList, oldIndex);
      if (select) select.value = fromList.dataset.lane;
      card.classList.add("refused");
      window.setTimeout(() => card.classList.remove("refused"), 1500);
      say(answer.reason, true);
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    const board = document.querySelector("[data-board]");
    if (!board) return;
    for (const head of board.querySelectorAll("[data-color]")) head.style.borderTopColor = head.dataset.color;
    if (!("editable" in board.dataset)) return;
    for (const list of board.querySelectorAll("[data-cards]")) {
      window.Sortable.create(list, {group: "lanes", animation: 150, forceFallback: true, fallbackTolerance: 4, filter: "select, a", preventOnFilter: false,
        ghostClass: "ghost", onEnd: (event) => {
          if (event.from !== event.to) settle(board, event.item, event.from, event.oldIndex);
        }});
    }
    board.addEventListener("change", (event) => {
      if (!event.target.matches("[data-move]")) return;
      const card = event.target.closest(".kcard");
      const fromList = card.parentElement;
      const oldIndex = Array.prototype.indexOf.call(fromList.children, card);
      const target = board.querySelector(`[data-cards][data-lane="${CSS.escape(event.target.value)}"]`);
      target.insertBefore(card, target.firstChild);
      settle(board, card, fromList, oldIndex);
    });
  });
})();
