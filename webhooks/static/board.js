// The dispatch board's live updates: asks /board/changes every few seconds with the version it shows; only when something
// changed does the answer carry the redrawn timeline, queue and map, which replace the old ones in place.
(function () {
  'use strict';
  var live = document.getElementById('board-live');
  if (!live) { return; }
  var stale = document.getElementById('board-stale');
  var every = 10000;
  var failures = 0;
  var timer = null;
  function poll() {
    if (document.hidden) { return schedule(); }
    var url = '/board/changes?day=' + encodeURIComponent(live.dataset.day) + '&since=' + encodeURIComponent(live.dataset.version);
    fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (r) {
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (answer) {
        failures = 0;
        if (stale) { stale.hidden = true; }
        if (!answer.changed) { return; }
        // keep the keyboard where it was: the same visit's block has the same data-visit after the redraw
        var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.getAttribute('data-visit') : null;
        live.innerHTML = answer.html;
        live.dataset.version = answer.version;
        if (focused) {
          var again = live.querySelector('[data-visit="' + focused + '"]');
          if (again) { again.focus(); }
        }
      })
      .catch(function () {
        failures += 1;
        if (stale && failures >= 2) { stale.hidden = false; }  // signed out or offline: say so, with a reload link
      })
      .then(schedule);
  }
  function schedule() { window.clearTimeout(timer); timer = window.setTimeout(poll, failures ? Math.min(60000, every * (failures + 1)) : every); }
  document.addEventListener('visibilitychange', function () { if (!document.hidden) { poll(); } });
  schedule();
  window.fieldchatBoardPoll = poll;  // lets a test ask now instead of waiting
})();
