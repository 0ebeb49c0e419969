// Form controls: search-as-you-type lookups (a search box that refills the lookup's <select>
// from /app/o/<target>/options, searched on the server as the user) and date pickers (flatpickr;
// the browser's own date input when it is missing). Re-applied after htmx swaps the form body
// (conditional fields are evaluated on the server, engine/ui/conditions.py). No inline styles:
// the pages' Content-Security-Policy blocks them.
(() => {
  const fill = (select, items) => {
    const chosen = select.value;
    const kept = [...select.options].filter((o) => o.value === "" || o.value === chosen);
    select.replaceChildren(...kept);
    for (const item of items) {
      if (item.value === chosen) continue;
      select.add(new Option(item.text, item.value));
    }
  };
  const searchBox = (select) => {
    const box = document.createElement("input");
    box.type = "search";
    box.className = "lookup-search";
    box.placeholder = select.form ? select.form.dataset.choose : "";
    box.setAttribute("aria-label", `${box.placeholder} ${select.labels[0] ? select.labels[0].textContent : ""}`);
    let timer = null;
    box.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        fetch(`${select.dataset.source}?q=${encodeURIComponent(box.value)}`, {credentials: "same-origin",
          headers: {Accept: "application/json"}})
          .then((r) => (r.ok ? r.json() : [])).then((items) => {
            fill(select, items);
            select.size = Math.max(2, Math.min(select.options.length, 7)); // the results as an open list
          }).catch(() => {});
      }, 250);
    });
    box.addEventListener("change", (event) => event.stopPropagation()); // not a field of the form
    const close = () => { select.size = 0; };
    select.addEventListener("change", close);
    select.addEventListener("blur", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && select.size > 1) { event.preventDefault(); select.focus(); }
    });
    select.before(box);
  };
  const enhance = (root) => {
    for (const select of root.querySelectorAll('select[data-enhance="lookup"]')) {
      if (!select.dataset.ready) {
        select.dataset.ready = "1";
        searchBox(select);
      }
    }
    const form = document.querySelector("form.record-form");
    const language = form ? form.dataset.language : "en";
    if (window.flatpickr) {
      const locale = language === "zh-TW" ? "zh_tw" : language === "zh-CN" ? "zh" : "default";
      for (const input of root.querySelectorAll("input[data-picker]")) {
        if (input._flatpickr) continue;
        const withTime = input.dataset.picker === "datetime";
        flatpickr(input, {allowInput: true, enableTime: withTime, time_24hr: true,
          dateFormat: withTime ? "Y-m-d\\TH:i" : "Y-m-d",
          locale: (window.flatpickr.l10ns && window.flatpickr.l10ns[locale]) || "default"});
      }
    }
  };
  document.addEventListener("DOMContentLoaded", () => enhance(document));
  document.addEventListener("htmx:afterSwap", () => enhance(document));
})();
