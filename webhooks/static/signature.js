// The signature pad (webhooks/signature_pad.py): draw with a finger, pen or mouse (pointer events), Clear, Save.
// Strokes are kept as points in CSS pixels, so a rotated phone redraws them at the new size; Save posts one PNG.
(function () {
  "use strict";
  var page = document.getElementById("pad-page");
  var canvas = document.getElementById("pad");
  if (!page || !canvas) return;
  var status = document.getElementById("status");
  var save = document.getElementById("save");
  var clear = document.getElementById("clear");
  var ctx = canvas.getContext("2d");
  var strokes = [];  // [[{x, y}, ...], ...]
  var current = null;
  var INK = "#111827";
  var EXPORT_WIDTH = 1200;  // the stored image's width at most (the server takes 60–2400 pixels a side)

  function fit() {
    var ratio = window.devicePixelRatio || 1;
    var box = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    redraw(ctx, 1);
  }

  function line(target, scale, stroke) {
    target.lineWidth = 2.6 * scale;
    target.lineCap = "round";
    target.lineJoin = "round";
    target.strokeStyle = INK;
    target.fillStyle = INK;
    if (stroke.length === 1) {  // a dot
      target.beginPath();
      target.arc(stroke[0].x * scale, stroke[0].y * scale, 1.5 * scale, 0, Math.PI * 2);
      target.fill();
      return;
    }
    target.beginPath();
    target.moveTo(stroke[0].x * scale, stroke[0].y * scale);
    for (var i = 1; i < stroke.length; i++) target.lineTo(stroke[i].x * scale, stroke[i].y * scale);
    target.stroke();
  }

  function redraw(target, scale) {
    var box = canvas.getBoundingClientRect();
    target.clearRect(0, 0, box.width * scale, box.height * scale);
    strokes.forEach(function (stroke) { line(target, scale, stroke); });
  }

  function point(event) {
    var box = canvas.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  function say(text, tone) {
    status.textContent = text || "";
    status.className = "status" + (tone ? " " + tone : "");
  }

  canvas.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
    current = [point(event)];
    strokes.push(current);
    line(ctx, 1, current);
    say("");
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!current) return;
    event.preventDefault();
    var events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    if (!events.length) events = [event];
    events.forEach(function (e) { current.push(point(e)); });
    line(ctx, 1, current.slice(-events.length - 1));
  });
  function end() { current = null; }
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("lostpointercapture", end);
  window.addEventListener("resize", fit);

  clear.addEventListener("click", function () {
    strokes = [];
    redraw(ctx, 1);
    say("");
    canvas.focus();
  });

  function exported() {
    var box = canvas.getBoundingClientRect();
    var scale = Math.min(EXPORT_WIDTH / box.width, 3);
    var out = document.createElement("canvas");
    out.width = Math.round(box.width * scale);
    out.height = Math.round(box.height * scale);
    var target = out.getContext("2d");
    strokes.forEach(function (stroke) { line(target, scale, stroke); });
    return out.toDataURL("image/png");
  }

  function finish(title, message) {
    page.textContent = "";
    var h = document.createElement("h1");
    h.textContent = title || "";
    var p = document.createElement("p");
    p.className = "result";
    p.setAttribute("role", "alert");
    p.textContent = message || "";
    page.appendChild(h);
    page.appendChild(p);
  }

  save.addEventListener("click", function () {
    if (!strokes.length) {
      say(page.getAttribute("data-empty"), "bad");
      canvas.focus();
      return;
    }
    save.disabled = true;
    clear.disabled = true;
    say(page.getAttribute("data-saving"));
    fetch(page.getAttribute("data-post"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ png: exported() })
    }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
    }).then(function (result) {
      var answer = result.answer || {};
      if (result.ok || answer.ended) {
        finish(answer.title, answer.message);
        return;
      }
      say(answer.message || page.getAttribute("data-network"), "bad");
      save.disabled = false;
      clear.disabled = false;
    }).catch(function () {
      say(page.getAttribute("data-network"), "bad");
      save.disabled = false;
      clear.disabled = false;
    });
  });

  fit();
})();
