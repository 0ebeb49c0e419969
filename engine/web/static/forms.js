// Form controls: search-as-you-type lookups and multi-selects (Tom Select), date pickers
// (flatpickr; the browser's own date input when it is missing). Re-applied after htmx swaps the
// form body (conditional fields are evaluated on the server, engine/ui/conditions.py).
(() => {
  const enhance = (root) => {
    const form = root.closest ? (root.closest("form") || document.querySelector("form.record-form")) : null;
    const hint = form ? form.dataset.choose : "";
    const language = form ? form.dataset.language : "en";
    if (window.TomSelect) {
      for (const select of root.querySelectorAll('select[data-enhance="lookup"]')) {
        if (select.tomselect) continue;
        const source = select.dataset.source;
        new TomSelect(select, {
          valueField: "value", labelField: "text", searchField: ["text"], placeholder: hint,
          maxOptions: 20, loadThrottle: 250, preload: "focus",
          load: (query, done) => {
            fetch(`${source}?q=${encodeURIComponent(query)}`, {credentials: "same-origin",
              headers: {Accept: "application/json"}})
              .then((r) => (r.ok ? r.json() : [])).then(done).catch(() => done());
          },
        });
      }
      for (const select of root.querySelectorAll('select[data-enhance="multi"]')) {
        if (!select.tomselect) new TomSelect(select, {plugins: ["remove_button"], placeholder: hint});
      }
    }
    if (window.flatpickr) {
      const locale = language === "zh-TW" ? "zh_tw" : language === "zh-CN" ? "zh" : "default";
      for (const input of root.querySelectorAll("input[data-picker]")) {
        if (input._flatpickr) continue;
        const withTime = input.dataset.picker === "datetime";
        flatpickr(input, {allowInput: true, enableTime: withTime, time_24hr: true,
          dateFormat: withTime ? "Y-m-d\\TH:i" : "Y-m-d", altInput: true,
          altFormat: withTime ? "Y-m-d H:i" : "Y-m-d",
          locale: (window.flatpickr.l10ns && window.flatpickr.l10ns[locale]) || "default"});
      }
    }
  };
  document.addEventListener("DOMContentLoaded", () => enhance(document));
  document.addEventListener("htmx:afterSwap", (event) => enhance(event.detail.elt.parentNode || document));
})();
