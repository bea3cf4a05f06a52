/* Command-center page logic that must run in the browser: map symbols and the push
   dispatcher. Data never arrives here: a push only says which parts to re-read. */
(function () {
  "use strict";
  var SEV_COLOUR = { red: "#e02424", orange: "#ff8a00", yellow: "#f5c400", blue: "#1c64f2" };
  var SEV_RANK = { red: 1, orange: 2, yellow: 3, blue: 4 };
  var OK_COLOUR = "#2fd3a5";

  function worst(a, b) {
    if (!a) { return b || null; }
    if (!b) { return a; }
    return SEV_RANK[a] <= SEV_RANK[b] ? a : b;
  }

  var map = {
    countyStyle: function (feature) {
      return { color: "#4cc9f0", weight: 2.5, opacity: 0.95, fillColor: "#0b3d5c", fillOpacity: 0.12 };
    },
    townshipStyle: function (feature) {
      var gen = feature.properties && feature.properties.generated;
      return {
        color: gen ? "#7f8fa6" : "#9ad0ec", weight: 0.8, opacity: 0.7,
        dashArray: gen ? "4 4" : null, fillOpacity: 0
      };
    },
    pointToLayer: function (feature, latlng) {
      var sev = feature.properties.severity;
      var alarm = sev === "red" || sev === "orange";
      return L.circleMarker(latlng, {
        radius: alarm ? 9 : 6,
        color: alarm ? "#ffffff" : "#0d1b2a",
        weight: alarm ? 2 : 1,
        fillColor: sev ? SEV_COLOUR[sev] : OK_COLOUR,
        fillOpacity: 0.95,
        className: "gc-dev gc-dev-" + (sev || "ok")
      });
    },
    clusterToLayer: function (feature, latlng, index) {
      // A cluster shows the worst severity among its devices, so an alarm never hides in a count.
      var sev = null;
      var leaves = index.getLeaves(feature.properties.cluster_id, 2000);
      for (var i = 0; i < leaves.length; i++) {
        sev = worst(sev, leaves[i].properties.severity);
      }
      var n = feature.properties.point_count_abbreviated;
      var icon = L.divIcon({
        html: "<div><span>" + n + "</span></div>",
        className: "gc-cluster gc-cluster-" + (sev || "ok"),
        iconSize: L.point(44, 44)
      });
      return L.marker(latlng, { icon: icon });
    }
  };

  // Push dispatcher state (one per page).
  var push = {
    last: 0, attempt: Date.now(), conn: 0, stale: 13000, retryAt: null, n: 0, seen: 0, down: false
  };
  var TOPICS = ["mode", "alarm", "order", "device", "camera"];

  function bump(ids) {
    push.n += 1;
    return { n: push.n, ids: ids === undefined ? null : ids };
  }

  var clientside = {
    // Inputs: the SSE value and the 1 s tick. Outputs: SSE url, one signal per topic, status,
    // and a health signal that makes the server check the data service.
    dispatch: function (value, tick, url, dataDown) {
      var nu = window.dash_clientside.no_update;
      var out = { url: nu, mode: nu, alarm: nu, order: nu, device: nu, camera: nu, health: nu };
      var now = Date.now();
      var trig = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
      if (trig.indexOf("push.value") >= 0 && value) {
        // The value is the whole stream so far, one JSON object per line.
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
            if (msg.error) {
              // The stream lost the data service: re-read once so every figure shows "—"
              // instead of a value nobody can vouch for.
              if (!push.down) { TOPICS.forEach(function (t) { out[t] = bump(); }); }
              push.down = true;
              out.health = bump();
            } else if (msg.hello) {
              // Whatever was pushed while this page was not connected is re-read now.
              if (push.down) { out.health = bump(); }
              push.down = false;
              TOPICS.forEach(function (t) { out[t] = bump(); });
            } else if (msg.topics) {
              TOPICS.forEach(function (t) {
                if (msg.topics[t] !== undefined) { out[t] = bump(msg.topics[t]); }
              });
            }
            if (msg.reconnect !== undefined) { push.retryAt = now + (msg.reconnect || 0); }
          });
        }
      }
      // Watchdog: the stream ended, the server restarted, or it said to come back.
      var silent = now - push.last > push.stale && now - push.attempt > push.stale;
      if ((push.retryAt !== null && now >= push.retryAt) || silent) {
        push.retryAt = null;
        push.attempt = now;  // give the new connection a full stale period
        push.conn += 1;
        push.seen = 0;  // the new stream's text starts from nothing
        out.url = "/api/push?c=" + push.conn;
      }
      var live = now - push.last <= push.stale;
      var status = (push.down || dataDown) ? "push-dot down" : (live ? "push-dot live" : "push-dot");
      return [out.url, out.mode, out.alarm, out.order, out.device, out.camera, status, out.health];
    },
    clock: function (tick, cam) {
      var now = new Date();
      // Shown in Asia/Shanghai whatever the screen's own zone is.
      var sh = new Date(now.getTime() + 8 * 3600 * 1000);
      function p(x) { return (x < 10 ? "0" : "") + x; }
      var txt = sh.getUTCFullYear() + "-" + p(sh.getUTCMonth() + 1) + "-" + p(sh.getUTCDate()) +
        " " + p(sh.getUTCHours()) + ":" + p(sh.getUTCMinutes()) + ":" + p(sh.getUTCSeconds()) + " +08:00";
      var age = "—";
      if (cam && cam.last_frame_ms) {
        age = ((now.getTime() - cam.last_frame_ms) / 1000).toFixed(1);
      }
      return [txt, age];
    }
  };

  window.gridcc = Object.assign({}, window.gridcc, { map: map });
  window.dash_clientside = Object.assign({}, window.dash_clientside, { gridcc: clientside });
})();
