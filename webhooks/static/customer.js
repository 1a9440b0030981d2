/* The customer page: the link's token (after "#", never sent in a URL) is exchanged once for an HTTP-only cookie, then
   the page polls its own chat. It names no chat: the server derives the one chat this link owns. */
(function () {
  "use strict";
  var log = document.getElementById("log"), notice = document.getElementById("notice");
  var text = document.getElementById("text"), form = document.getElementById("composer");
  var locBtn = document.getElementById("location"), photo = document.getElementById("photo");
  var shown = {}, after = 0, labels = {}, stopped = false, counter = 0;

  function stop(message) {
    stopped = true;
    notice.textContent = message;
    notice.style.display = "block";
    form.style.display = "none";
  }

  function refused(response) {
    return response.json().then(function (body) {
      var detail = body && body.detail;
      stop((detail && detail.message) || labels.invalid || "This link does not work.");
    }, function () { stop(labels.invalid || "This link does not work."); });
  }

  function applyLabels(given) {
    labels = given || {};
    document.getElementById("title").textContent = labels.title || "fieldchat";
    document.title = labels.title || "fieldchat";
    text.placeholder = labels.placeholder || "";
    document.getElementById("text-label").textContent = labels.placeholder || "";
    document.getElementById("send").setAttribute("aria-label", labels.send || "send");
    locBtn.setAttribute("aria-label", labels.location || "location");
    document.getElementById("photo-label").setAttribute("aria-label", labels.photo || "photo");
  }

  function nextId() { counter += 1; return "m" + Date.now().toString(36) + counter; }

  function post(path, body) {
    return fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { if (r.status === 401 || r.status === 403) { return refused(r); } return poll(); });
  }

  function mine(label) {
    var node = document.createElement("div");
    node.className = "msg me";
    node.textContent = label;
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
  }

  function render(m) {
    var node = document.createElement("div");
    node.className = "msg bot";
    node.setAttribute("data-id", String(m.shows));
    node.appendChild(document.createTextNode(m.text));
    (m.photos || []).forEach(function (src) { var img = document.createElement("img"); img.src = src; img.alt = ""; node.appendChild(img); });
    if (m.buttons && m.buttons.length) {
      var row = document.createElement("div");
      row.className = "buttons";
      m.buttons.forEach(function (line) {
        line.forEach(function (b) {
          var button = document.createElement("button");
          button.type = "button";
          button.textContent = b.label;
          button.addEventListener("click", function () {
            mine(b.label);
            post("/customer/api/send", { message_id: nextId(), kind: "button", data: b.data, pressed: m.shows });
          });
          row.appendChild(button);
        });
      });
      node.appendChild(row);
    }
    return node;
  }

  function poll() {
    if (stopped) { return Promise.resolve(); }
    return fetch("/customer/api/messages?after=" + after, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401 || r.status === 403) { return refused(r); }
      if (!r.ok) { return; }
      return r.json().then(function (body) {
        body.messages.forEach(function (m) {
          var node = render(m), old = shown[m.shows];
          if (old) { log.replaceChild(node, old); } else { log.appendChild(node); }
          shown[m.shows] = node;
          if (m.retires && shown[m.retires]) { shown[m.retires].classList.add("retired"); }
          locBtn.classList.toggle("requested", m.request === "location");
          after = Math.max(after, m.id);
        });
        if (body.messages.length) { log.scrollTop = log.scrollHeight; }
      });
    }, function () { /* offline for a moment: the next poll tries again */ });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var value = text.value.trim();
    if (!value) { return; }
    text.value = "";
    mine(value);
    post("/customer/api/send", { message_id: nextId(), kind: "text", text: value });
  });

  locBtn.addEventListener("click", function () {
    if (!navigator.geolocation) { return; }
    navigator.geolocation.getCurrentPosition(function (p) {
      mine("📍");
      post("/customer/api/send", { message_id: nextId(), kind: "location", latitude: p.coords.latitude, longitude: p.coords.longitude });
    });
  });

  photo.addEventListener("change", function () {
    if (!photo.files.length) { return; }
    var data = new FormData();
    data.append("message_id", nextId());
    data.append("file", photo.files[0]);
    mine("📷");
    fetch("/customer/api/photo", { method: "POST", credentials: "same-origin", body: data }).then(function (r) {
      photo.value = "";
      if (r.status === 401 || r.status === 403) { return refused(r); }
      return poll();
    });
  });

  function start() {
    var token = new URLSearchParams(location.hash.slice(1)).get("customer");
    var opened;
    if (token) {
      // the token leaves the address bar at once: a screenshot or a shared screen does not show it
      history.replaceState(null, "", location.pathname);
      opened = fetch("/customer/api/session", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
                                                body: JSON.stringify({ token: token }) });
    } else {
      opened = fetch("/customer/api/labels", { credentials: "same-origin" });
    }
    opened.then(function (r) {
      if (!r.ok) { return refused(r); }
      return r.json().then(function (body) {
        applyLabels(body.labels);
        poll();
        setInterval(poll, 2000);
      });
    }, function () { stop("offline"); });
  }

  start();
})();
