/* Camera wall (/cameras): push dispatch and the tiles. The tiles are set here, not by
   server callbacks, so an MJPEG stream is opened once per camera and closed the moment the
   camera goes offline (no frozen last frame), then reopened when it is back. */
(function () {
  "use strict";
  // A status older than its limit plus one re-read period means no frame is coming.
  var REFRESH_SLACK_MS = 2500;
  var RETRY_MS = 3000;
  // Frames per second asked of the server per tile: the more tiles, the fewer frames,
  // so one screen's bitrate stays bounded whatever the layout.
  var FPS = { 1: 5, 4: 4, 9: 2, 16: 1 };

  var push = { last: 0, attempt: Date.now(), conn: 0, stale: 13000, retryAt: null, n: 0, seen: 0 };
  var wall = {
    page: 0, lastRotate: Date.now(), key: "", skew: 0, store: null, gen: 0, tiles: {}
  };

  function el(id) { return document.getElementById(id); }
  function setText(id, text) {
    var e = el(id);
    if (e && e.textContent !== text) { e.textContent = text; }
  }

  function onError(i) {
    // The stream broke (web process restarted, network): open it again shortly.
    var st = wall.tiles[i];
    if (st) { st.retryAt = Date.now() + RETRY_MS; }
  }

  function setTile(i, cam, live, fps, texts, now, sees) {
    var tile = el("cameras-tile-" + i);
    var img = el("cameras-img-" + i);
    if (!tile || !img) { return; }
    var st = wall.tiles[i] || {};
    var id = cam ? cam.id : null;
    var retry = st.retryAt && now >= st.retryAt;
    if (st.id !== id || st.live !== live || st.fps !== fps || retry) {
      if (id && live) {
        wall.gen += 1;
        if (!img.dataset.hooked) {
          img.addEventListener("error", function () { onError(i); });
          img.dataset.hooked = "1";
        }
        img.src = "/media/cameras/" + encodeURIComponent(id) + "/live.mjpeg?fps=" + fps + "&v=" + wall.gen;
      } else {
        // Dropping the src ends the stream; the card below says why there is no picture.
        img.removeAttribute("src");
      }
      wall.tiles[i] = { id: id, live: live, fps: fps, retryAt: null };
    }
    var cls = "cw-tile " + (!cam ? "cw-empty" : (live ? "cw-on" : "cw-off"));
    if (cam && live && cam.motion_active) { cls += " cw-moving"; }
    if (sees) { cls += " cw-sees"; }
    if (tile.className !== cls) { tile.className = cls; }
    tile.setAttribute("data-camera", id || "");
    tile.setAttribute("data-state", !cam ? "empty" : (live ? "online" : "offline"));
    setText("cameras-name-" + i, cam ? cam.name : "");
    setText("cameras-place-" + i, cam ? (cam.place || "") : "");
    setText("cameras-state-" + i, cam && sees ? texts.sees_place : "");
    setText("cameras-motion-" + i, cam && live ? (cam.motion_active ? texts.motion : texts.still) : (cam ? texts.offline : ""));
    var motion = el("cameras-motion-" + i);
    if (motion) {
      var mc = "cw-badge " + (!cam ? "" : (!live ? "cw-badge-off" : (cam.motion_active ? "cw-badge-motion" : "cw-badge-still")));
      if (motion.className !== mc) { motion.className = mc; }
    }
    var age = "";
    if (cam && cam.last_frame_ms) {
      age = texts.frame_age + " " + Math.max(0, (now - wall.skew - cam.last_frame_ms) / 1000).toFixed(1) + " " + texts.seconds;
    }
    setText("cameras-age-" + i, age);
  }

  var clientside = {
    dispatch: function (value, tick, url) {
      var nu = window.dash_clientside.no_update;
      var out = { url: nu, sig: nu };
      var now = Date.now();
      var trig = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
      if (trig.indexOf("cameras-push.value") >= 0 && value) {
        if (value.length < push.seen) { push.seen = 0; }
        var fresh = value.slice(push.seen);
        var cut = fresh.lastIndexOf("\n");
        if (cut >= 0) {
          push.seen += cut + 1;
          fresh.slice(0, cut).split("\n").forEach(function (line) {
            var msg = null;
            try { msg = line ? JSON.parse(line) : null; } catch (e) { msg = null; }
            if (!msg) { return; }
            push.last = now;
            if (msg.keepalive_s) { push.stale = msg.keepalive_s * 2500 + 1000; }
            // A hello (reconnected: something may have been missed), an error, or a camera
            // topic all mean: read the cameras again.
            if (msg.hello || msg.error || (msg.topics && msg.topics.camera !== undefined)) {
              push.n += 1;
              out.sig = push.n;
            }
            if (msg.reconnect !== undefined) { push.retryAt = now + (msg.reconnect || 0); }
          });
        }
      }
      var silent = now - push.last > push.stale && now - push.attempt > push.stale;
      if ((push.retryAt !== null && now >= push.retryAt) || silent) {
        push.retryAt = null;
        push.attempt = now;
        push.conn += 1;
        push.seen = 0;
        out.url = "/api/push?c=" + push.conn;
      }
      var status = now - push.last <= push.stale ? "push-dot live" : "push-dot";
      return [out.url, out.sig, status];
    },

    render: function (tick, store, view, pauseClicks, rotateS, texts) {
      var now = Date.now();
      texts = texts || {};
      if (store && store !== wall.store) {
        wall.store = store;
        // The server's clock decides frame age; this screen's clock may be off.
        wall.skew = store.server_ms ? now - store.server_ms : 0;
      }
      var cams = (store && store.cameras) || [];
      view = view || { n: 4, pinned: null };
      var n = [1, 4, 9, 16].indexOf(view.n) >= 0 ? view.n : 4;
      var list = cams;
      if (view.pinned) {
        var byId = {};
        cams.forEach(function (c) { byId[c.id] = c; });
        list = view.pinned.map(function (id) { return byId[id]; }).filter(Boolean);
      }
      var sees = {};
      (view.sees || []).forEach(function (id) { sees[id] = true; });
      var key = n + "|" + list.map(function (c) { return c.id; }).join(",");
      if (key !== wall.key) {
        wall.key = key;
        wall.page = 0;
        wall.lastRotate = now;
      }
      var paused = (pauseClicks || 0) % 2 === 1;
      var pages = Math.max(1, Math.ceil(list.length / n));
      if (pages > 1 && !paused && now - wall.lastRotate >= (rotateS || 10) * 1000) {
        wall.page = (wall.page + 1) % pages;
        wall.lastRotate = now;
      }
      if (paused) { wall.lastRotate = now; }
      if (wall.page >= pages) { wall.page = 0; }
      var box = el("cameras-wall");
      if (box && box.className !== "cw-wall cw-n" + n) { box.className = "cw-wall cw-n" + n; }
      var fps = FPS[n];
      for (var i = 0; i < 16; i++) {
        var cam = i < n ? list[wall.page * n + i] || null : null;
        var live = false;
        if (cam) {
          var limit = cam.frame_age_limit_ms || 5000;
          var age = cam.last_frame_ms ? now - wall.skew - cam.last_frame_ms : Infinity;
          live = !!cam.online && age <= limit + REFRESH_SLACK_MS;
        }
        setTile(i, cam, live, fps, texts, now, cam ? !!sees[cam.id] : false);
        var tile = el("cameras-tile-" + i);
        if (tile) { tile.style.display = i < n ? "" : "none"; }
      }
      var pageText = pages > 1 ? (wall.page + 1) + " / " + pages + " " + (texts.page || "") : "";
      return [pageText, paused ? texts.resume : texts.pause];
    }
  };

  window.dash_clientside = Object.assign({}, window.dash_clientside, { gridcc_cameras: clientside });
})();
