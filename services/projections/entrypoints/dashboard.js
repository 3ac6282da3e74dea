(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("initial").textContent);
  var ROLE = boot.role, ME = boot.me, DETAIL = boot.interview_id;
  var READER = ROLE === "auditor" || ROLE === "admin";
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var HOUR = 3600000, DAY = 24 * HOUR;
  var TZ = (function (wanted) {
    if (wanted) {
      try { new Intl.DateTimeFormat("en-GB", { timeZone: wanted }); return wanted; } catch (e) { /* browser zone */ }
    }
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  })(boot.tz);
  var TZQ = boot.tz ? "?tz=" + encodeURIComponent(boot.tz) : "";
  var state = boot.payload;
  var view = document.getElementById("view");

  // ------------------------------------------------------------ text helpers
  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function person(id) { return !id ? "someone" : UUID.test(id) ? "user " + id.slice(0, 8) : id; }
  function jobName(id) {
    if (UUID.test(id)) return "Job " + id.slice(0, 8);
    var t = String(id).replace(/[-_]+/g, " ").trim();
    return t.charAt(0).toUpperCase() + t.slice(1);
  }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many || one + "s"); }

  var FMT = new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short"
  });
  function parts(d) {
    var p = {};
    FMT.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    return p;
  }
  function when(iso) {   // "Tue 8 Dec, 15:00 CET" (the year only when it is not this one)
    if (!iso) return "";
    var p = parts(new Date(iso)), now = parts(new Date());
    return p.weekday + " " + p.day + " " + p.month + (p.year !== now.year ? " " + p.year : "") +
      ", " + p.hour + ":" + p.minute + " " + p.timeZoneName;
  }
  function day(iso) {
    var p = parts(new Date(iso));
    return p.weekday + " " + p.day + " " + p.month;
  }
  function span(ms) {
    var m = Math.round(Math.abs(ms) / 60000);
    if (m < 60) return m + " min";
    if (m < 48 * 60) return Math.round(m / 60) + " h";
    return Math.round(m / 1440) + " days";
  }
  function ago(iso) {    // "in 5 h", "3 days ago", "just now"
    var ms = new Date(iso) - Date.now();
    if (Math.abs(ms) < 60000) return "just now";
    return ms > 0 ? "in " + span(ms) : span(ms) + " ago";
  }
  function left(iso) {   // a deadline: "in 5 h", "2 days left"
    var ms = new Date(iso) - Date.now();
    if (ms <= 0) return "any moment now";
    if (ms < 48 * HOUR) return "in " + span(ms);
    return Math.round(ms / DAY) + " days left";
  }
  function timeTag(iso, text) {
    return '<time datetime="' + esc(iso) + '" title="' + esc(when(iso)) + '">' + esc(text) + "</time>";
  }
  function money(offer) {
    if (!offer || offer.amount === null) return "";
    var n = Number(offer.amount), s;
    try {
      s = new Intl.NumberFormat("en-GB", { style: "currency", currency: offer.currency,
        maximumFractionDigits: n % 1 ? 2 : 0 }).format(n);
    } catch (e) { s = offer.amount + " " + offer.currency; }
    return s + (offer.rate_type === "hourly" ? " an hour" : " fixed");
  }

  // ------------------------------------------------------------ interview facts
  var STATUS = {
    invited: "Invited", accepted: "Accepted", in_progress: "In progress",
    offer_extended: "Offer extended", hired: "Hired", declined: "Declined",
    cancelled: "Cancelled", expired: "Expired"
  };
  var OPEN = { invited: 1, accepted: 1, in_progress: 1, offer_extended: 1 };
  var MY_SIDE = ROLE === "client" ? "client" : ROLE === "freelancer" ? "freelancer" : null;
  function other(iv) { return ROLE === "client" ? iv.freelancer_id : iv.client_id; }
  function waiting(iv) {
    if (!iv.next_actor) return "";
    if (iv.next_actor === MY_SIDE) return "Waiting on you";
    return "Waiting on the " + iv.next_actor;
  }
  function waitBadge(iv) {
    var w = waiting(iv);
    if (!w) return "";
    return '<span class="wait' + (iv.next_actor === MY_SIDE ? " you" : "") + '">' + esc(w) + "</span>";
  }
  function what(iv) { return iv.status === "invited" ? "Invitation" : "Offer"; }
  function deadline(iv) {
    if (!iv.next_deadline_at) return "";
    var l = left(iv.next_deadline_at);
    return what(iv) + (/^in |any/.test(l) ? " expires " + l : ": " + l);
  }
  function soon(iv) { return iv.next_deadline_at && new Date(iv.next_deadline_at) - Date.now() < 48 * HOUR; }
  function scheduled(iv) {
    if (!iv.scheduled_at) return "";
    return when(iv.scheduled_at) + (iv.duration_minutes ? " · " + iv.duration_minutes + " min" : "");
  }
  function closedLine(iv) {
    if (iv.status === "hired") return "Hired " + ago(iv.hired_at || iv.updated_at);
    if (iv.status === "cancelled" && iv.cancellation) {
      return "Cancelled by the " + (iv.cancellation.by || "system") + " " + ago(iv.updated_at);
    }
    if (iv.status === "expired") return (iv.expired_what === "offer" ? "Offer" : "Invitation") + " expired " + ago(iv.updated_at);
    return STATUS[iv.status] + " " + ago(iv.updated_at);
  }
  function href(iv) { return "/dashboard/interviews/" + encodeURIComponent(iv.id) + TZQ; }

  // A card: a link to the interview page, with who, who acts next, the deadline, the time.
  function card(iv, opts) {
    opts = opts || {};
    var lines = [];
    var title = opts.title || person(other(iv));
    var label = [title, STATUS[iv.status], waiting(iv), deadline(iv),
      iv.scheduled_at ? "scheduled " + when(iv.scheduled_at) : ""].filter(Boolean).join(", ");
    lines.push('<span class="card-head"><span class="name">' + esc(title) + "</span>" +
      (opts.status ? '<span class="pill s-' + iv.status + '">' + esc(STATUS[iv.status]) + "</span>" : "") + "</span>");
    if (opts.sub) lines.push('<span class="sub">' + esc(opts.sub) + "</span>");
    if (OPEN[iv.status]) {
      if (!opts.todo) lines.push(waitBadge(iv));
      if (opts.todo && TODO[iv.status]) {
        var todo = iv.status === "in_progress" && iv.scheduled_at && new Date(iv.scheduled_at) > Date.now()
          ? "hold the interview, then make an offer" : TODO[iv.status];
        lines.push('<span class="line"><span class="k">Next</span><span>' + esc(todo.charAt(0).toUpperCase() + todo.slice(1)) +
          ' <span class="muted">\u00b7 waiting ' + esc(ago(iv.updated_at).replace(" ago", "")) + "</span></span></span>");
      }
      if (iv.next_deadline_at) {
        lines.push('<span class="line due' + (soon(iv) ? " urgent" : "") + '"><span class="k">Due</span>' +
          timeTag(iv.next_deadline_at, deadline(iv)) + "</span>");
      }
      if (iv.scheduled_at) {
        var past = new Date(iv.scheduled_at) < Date.now();
        lines.push('<span class="line' + (past ? " muted" : "") + '"><span class="k">' + (past ? "Met" : "Meets") +
          "</span>" + timeTag(iv.scheduled_at, scheduled(iv)) + "</span>");
      }
      if (iv.status === "offer_extended" && iv.offer) {
        lines.push('<span class="line"><span class="k">Offer</span>' + esc(money(iv.offer)) + "</span>");
      }
    } else {
      lines.push('<span class="line muted">' + esc(closedLine(iv)) + "</span>");
    }
    return '<a class="card' + (iv.next_actor && iv.next_actor === MY_SIDE ? " mine" : "") + '" href="' + esc(href(iv)) +
      '" aria-label="' + esc(label) + '">' + lines.join("") + "</a>";
  }

  function empty(text) { return '<p class="empty">' + esc(text) + "</p>"; }
  function section(id, title, body, extra) {
    return '<section class="panel" aria-labelledby="' + id + '-h" id="' + id + '"><h2 id="' + id + '-h">' +
      esc(title) + (extra ? ' <span class="count">' + esc(extra) + "</span>" : "") + "</h2>" + body + "</section>";
  }
  function list(items) {
    return items.length ? '<ul class="rows">' + items.map(function (x) { return "<li>" + x + "</li>"; }).join("") + "</ul>" : "";
  }
  function byTime(key) {
    return function (a, b) { return new Date(a[key]) - new Date(b[key]); };
  }
  function upcoming(ivs, days) {
    var now = Date.now();
    return ivs.filter(function (iv) {
      if (!OPEN[iv.status] || !iv.scheduled_at) return false;
      var t = new Date(iv.scheduled_at) - now;
      return t > -(iv.duration_minutes || 30) * 60000 && t < days * DAY;
    }).sort(byTime("scheduled_at"));
  }
  function expiring(ivs) {
    return ivs.filter(function (iv) { return OPEN[iv.status] && soon(iv); }).sort(byTime("next_deadline_at"));
  }
  function nav(links) {
    document.getElementById("nav").innerHTML = links.map(function (l) {
      return '<a href="' + l[0] + '">' + esc(l[1]) + "</a>";
    }).join("");
  }

  // ------------------------------------------------------------ client: My Jobs
  var COLUMNS = [["invited", "Invited"], ["accepted", "Accepted"], ["in_progress", "In progress"],
    ["offer_extended", "Offer extended"], ["hired", "Hired"], ["closed", "Closed"]];
  function column(status) { return OPEN[status] || status === "hired" ? status : "closed"; }
  function rank(iv) {
    return (iv.next_actor === MY_SIDE ? 0 : 1) * 1e15 +
      (iv.next_deadline_at ? new Date(iv.next_deadline_at).getTime() : 9e14) / 1e3;
  }
  function renderClient(p) {
    var ivs = p.interviews || [];
    var jobs = {};
    ivs.forEach(function (iv) { (jobs[iv.job_id] = jobs[iv.job_id] || []).push(iv); });
    var order = Object.keys(jobs).sort(function (a, b) {
      var oa = jobs[a].some(function (iv) { return OPEN[iv.status]; }) ? 0 : 1;
      var ob = jobs[b].some(function (iv) { return OPEN[iv.status]; }) ? 0 : 1;
      if (oa !== ob) return oa - ob;
      var la = Math.max.apply(null, jobs[a].map(function (iv) { return new Date(iv.updated_at).getTime(); }));
      var lb = Math.max.apply(null, jobs[b].map(function (iv) { return new Date(iv.updated_at).getTime(); }));
      return lb - la;
    });
    var mine = ivs.filter(function (iv) { return iv.next_actor === "client"; }).length;
    var soonList = expiring(ivs), next = upcoming(ivs, 7);
    var yours = ivs.filter(function (iv) { return iv.next_actor === "client"; }).sort(function (a, b) {
      return new Date(a.updated_at) - new Date(b.updated_at) || (a.freelancer_id < b.freelancer_id ? -1 : 1);
    });
    nav([["#yours", "Your move"], ["#upcoming", "Coming up"], ["#expiring", "Expiring"], ["#jobs", "Jobs"]]);
    var out = ["<h1>My Jobs</h1>"];
    out.push('<p class="lede">' + esc([plural(order.length, "job"), mine + " waiting on you",
      plural(next.length, "interview") + " this week", plural(soonList.length, "deadline") + " within 48 h"].join(" · ")) + "</p>");
    out.push('<div class="split three">');
    out.push(section("yours", "Waiting on you", list(yours.map(function (iv) {
      return card(iv, { title: person(iv.freelancer_id), sub: jobName(iv.job_id), todo: true });
    })) || empty("Nothing waits on you."), yours.length));
    out.push(section("upcoming", "Coming up · next 7 days", list(next.map(function (iv) {
      return card(iv, { title: person(iv.freelancer_id), sub: jobName(iv.job_id) });
    })) || empty("No interviews scheduled in the next 7 days."), next.length));
    out.push(section("expiring", "Expiring within 48 hours", list(soonList.map(function (iv) {
      return card(iv, { title: person(iv.freelancer_id), sub: jobName(iv.job_id), status: true });
    })) || empty("No invitation or offer expires in the next 48 hours."), soonList.length));
    out.push("</div>");
    out.push('<div id="jobs">');
    if (!order.length) out.push(empty("No candidates yet. Invite a freelancer to one of your jobs and they show up here."));
    order.forEach(function (job, i) {
      var cands = jobs[job];
      var waitingYou = cands.filter(function (iv) { return iv.next_actor === "client"; }).length;
      var open = cands.filter(function (iv) { return OPEN[iv.status]; }).length;
      var cols = COLUMNS.map(function (c) {
        var inCol = cands.filter(function (iv) { return column(iv.status) === c[0]; })
          .sort(function (a, b) { return rank(a) - rank(b); });
        var id = "job-" + i + "-" + c[0];
        return '<section class="col c-' + c[0] + (inCol.length ? "" : " is-empty") + '" aria-labelledby="' + id + '">' +
          '<h4 id="' + id + '">' + esc(c[1]) + ' <span class="count">' + inCol.length + "</span></h4>" +
          (inCol.length ? '<ul class="cards">' + inCol.map(function (iv) {
            return "<li>" + card(iv, { status: c[0] === "closed" }) + "</li>";
          }).join("") + "</ul>" : '<p class="none">None</p>') + "</section>";
      }).join("");
      out.push('<section class="job" aria-labelledby="job-' + i + '-h"><div class="job-head"><h3 id="job-' + i + '-h">' +
        esc(jobName(job)) + '</h3><p class="muted">' + esc([plural(cands.length, "candidate"), open + " open",
        waitingYou + " waiting on you"].join(" · ")) + '</p></div><div class="board">' + cols + "</div></section>");
    });
    out.push("</div>");
    return out.join("");
  }

  // ------------------------------------------------------------ freelancer: Interviews
  function renderFreelancer(p) {
    var ivs = p.interviews || [];
    var answer = ivs.filter(function (iv) { return iv.next_actor === "freelancer"; })
      .sort(function (a, b) { return rank(a) - rank(b); });
    var next = upcoming(ivs, 30);
    var theirs = ivs.filter(function (iv) { return iv.next_actor === "client" && next.indexOf(iv) < 0; });
    var closed = ivs.filter(function (iv) { return !OPEN[iv.status]; })
      .sort(function (a, b) { return new Date(b.updated_at) - new Date(a.updated_at); });
    nav([["#answer", "To answer"], ["#upcoming", "Coming up"], ["#open", "Open"], ["#closed", "Closed"]]);
    var out = ["<h1>Interviews</h1>"];
    var lede = [plural(answer.length, "answer") + " due"];
    if (next.length) lede.push("next interview " + when(next[0].scheduled_at));
    lede.push(plural(ivs.filter(function (iv) { return iv.next_actor === "client"; }).length, "interview") +
      " waiting on clients");
    out.push('<p class="lede">' + esc(lede.join(" · ")) + "</p>");
    var sub = function (iv) { return jobName(iv.job_id); };
    out.push('<div class="split">');
    out.push(section("answer", "Needs your answer", list(answer.map(function (iv) {
      return card(iv, { title: jobName(iv.job_id), todo: true,
        sub: (iv.status === "invited" ? "Invitation from " : "Offer from ") + person(iv.client_id) });
    })) || empty("Nothing to answer. You are all caught up."), answer.length));
    out.push(section("upcoming", "Coming up · next 30 days", list(next.map(function (iv) {
      return card(iv, { title: jobName(iv.job_id), sub: "with " + person(iv.client_id) });
    })) || empty("No interviews scheduled."), next.length));
    out.push("</div>");
    out.push(section("open", "Other open interviews", list(theirs.map(function (iv) {
      return card(iv, { title: jobName(iv.job_id), sub: "with " + person(iv.client_id), status: true });
    })) || empty("No other open interviews."), theirs.length));
    out.push(section("closed", "Closed", list(closed.slice(0, 12).map(function (iv) {
      return card(iv, { title: sub(iv), sub: "with " + person(iv.client_id), status: true });
    })) || empty("No closed interviews yet."), closed.length));
    return out.join("");
  }

  // ------------------------------------------------------------ auditors, admins: Platform
  function duration(s) {
    if (s === null || s === undefined) return "\u2013";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " days";
  }
  function percent(r) { return r === null || r === undefined ? "\u2013" : (r * 100).toFixed(1) + "%"; }
  var STAGES = { invited: "Invited", accepted: "Accepted", started: "Started", offer: "Offer", hired: "Hired" };
  var EVENT = {
    "interview.invited": "Invited", "interview.accepted": "Invitation accepted",
    "interview.declined": "Invitation declined", "interview.started": "Interview started",
    "interview.rescheduled": "Rescheduled", "interview.offer_extended": "Offer extended",
    "interview.offer_accepted": "Offer accepted", "interview.offer_declined": "Offer declined",
    "interview.offer_withdrawn": "Offer withdrawn", "interview.cancelled": "Cancelled",
    "interview.expired": "Expired"
  };
  function tile(id, label, value, note) {
    return '<div class="tile"><div class="label">' + esc(label) + '</div><div class="num" id="' + id + '">' +
      esc(value) + "</div>" + (note ? '<div class="muted">' + note + "</div>" : "") + "</div>";
  }
  function renderPlatform(p) {
    var st = p.stats, c = p.consumer;
    nav([["#health", "Consumer"], ["#funnel", "Funnel"], ["#activity", "Activity"]]);
    var out = ["<h1>Platform</h1>"];
    out.push('<p class="lede">' + esc(plural(st.total, "interview") + " · " + st.open + " open · " +
      plural(st.by_status.hired || 0, "hire")) + "</p>");
    out.push('<div class="tiles">' +
      tile("open", "Open interviews", st.open, '<span id="total">' + st.total + "</span> in all") +
      tile("count-hired", "Hired", st.by_status.hired || 0, "") +
      tile("median-hire", "Median invitation \u2192 hire", duration(st.time_to_hire.median_seconds),
        '<span id="hires">' + st.time_to_hire.count + "</span> hires") +
      tile("median-accept", "Median invitation \u2192 acceptance", duration(st.time_to_accept.median_seconds),
        '<span id="accepts">' + st.time_to_accept.count + "</span> accepted") + "</div>");
    var health;
    if (!c) {
      health = empty("The consumer's health is not known here.");
    } else {
      var lag = c.lag === null ? "unknown" : c.lag === 0 ? "Up to date" : plural(c.lag, "event") + " behind";
      var dead = c.dead_lettered === null ? "unknown" : String(c.dead_lettered);
      health = '<dl class="health">' +
        '<div class="' + (c.lag ? "warn" : "ok") + '"><dt>Views</dt><dd id="consumer-lag">' + esc(lag) + "</dd></div>" +
        '<div class="' + (c.parked ? "bad" : "ok") + '"><dt>Parked events</dt><dd id="consumer-parked">' + esc(c.parked) + "</dd></div>" +
        '<div class="' + (c.dead_lettered ? "bad" : "ok") + '"><dt>Dead-lettered since start</dt><dd id="consumer-dead">' + esc(dead) + "</dd></div>" +
        "</dl>" + '<p class="muted">Consumer group \u201c' + esc(c.group) + "\u201d reading the " + esc(c.source) +
        (c.parked ? ". Resolve parked events with <code>interviewctl dlq list</code>." : ".") + "</p>";
    }
    var top = 1;
    Object.keys(STATUS).forEach(function (k) { top = Math.max(top, st.by_status[k] || 0); });
    var statusRows = Object.keys(STATUS).map(function (k) {
      var n = st.by_status[k] || 0;
      return "<tr><th scope=\"row\">" + esc(STATUS[k]) + '</th><td class="bar"><span class="s-' + k + '" style="width:' +
        (n * 100 / top).toFixed(1) + '%"></span></td><td class="n" id="count-' + k + '">' + n + "</td></tr>";
    }).join("");
    var ftop = 1;
    st.funnel.forEach(function (f) { ftop = Math.max(ftop, f.count); });
    var funnelRows = st.funnel.map(function (f) {
      return "<tr><th scope=\"row\">" + esc(STAGES[f.stage]) + '</th><td class="bar"><span style="width:' +
        (f.count * 100 / ftop).toFixed(1) + '%"></span></td><td class="n" id="funnel-' + f.stage + '">' + f.count +
        '</td><td class="n muted" id="rate-' + f.stage + '">' + percent(f.rate_from_previous) + "</td></tr>";
    }).join("");
    out.push('<div class="split">');
    out.push(section("health", "Views consumer", health));
    out.push(section("funnel", "Funnel", '<table class="bars"><thead><tr><th scope="col">Stage</th><th scope="col"><span class="sr">Share</span></th>' +
      '<th scope="col" class="n">Count</th><th scope="col" class="n">From previous</th></tr></thead><tbody>' + funnelRows + "</tbody></table>"));
    out.push("</div>");
    var reasons = st.cancellations.by_reason.map(function (r) {
      return "<li>" + esc(r.reason === null ? "(no reason given)" : r.reason) + " <b>" + r.count + "</b></li>";
    }).join("");
    var parties = Object.keys(st.cancellations.by_party).sort().map(function (k) {
      return "By the " + k + ": " + st.cancellations.by_party[k];
    }).join(", ");
    out.push('<div class="split">');
    out.push(section("statuses", "Interviews by status", '<table class="bars"><tbody>' + statusRows + "</tbody></table>"));
    out.push(section("cancellations", "Cancellations", '<p id="cancel-parties">' + esc(parties || "None yet.") + "</p>" +
      (reasons ? '<ul id="cancel-reasons" class="reasons">' + reasons + "</ul>" : ""), st.cancellations.total));
    out.push("</div>");
    out.push(section("activity", "Recent activity", '<ol id="recent" class="activity">' + p.recent.map(function (e) {
      var target = "/dashboard/interviews/" + encodeURIComponent(e.interview_id) + TZQ;
      return '<li><a href="' + esc(target) + '"><b>' + esc(EVENT[e.type] || e.type) + "</b> " +
        esc(person(e.freelancer_id) + " \u00b7 " + jobName(e.job_id)) + '</a> <span class="muted">by the ' +
        esc(e.actor_role) + " \u00b7 " + timeTag(e.occurred_at, ago(e.occurred_at)) + "</span></li>";
    }).join("") + "</ol>"));
    return out.join("");
  }

  // ------------------------------------------------------------ one interview
  function entryText(e, iv) {
    var d = e.data || {}, r = e.actor.role;
    var by = r === "system" ? "automatically" : "by the " + r;
    switch (e.type) {
      case "interview.invited":
        return ["Invited " + person(iv.freelancer_id) + " " + by, d.expires_at ? "Answer by " + when(d.expires_at) : "", d.message];
      case "interview.accepted": return ["Invitation accepted"];
      case "interview.declined": return ["Invitation declined", "", d.reason];
      case "interview.started":
        return ["Interview started " + by, d.scheduled_at ? "Scheduled for " + when(d.scheduled_at) + " · " + (d.duration_minutes || 30) + " min" : ""];
      case "interview.rescheduled":
        return ["Moved " + by + " to " + when(d.scheduled_at),
          (d.previous_scheduled_at ? "Was " + when(d.previous_scheduled_at) + " · " : "") + (d.duration_minutes || 30) + " min", d.reason];
      case "interview.offer_extended":
        return ["Offer extended: " + money({ amount: d.amount, currency: d.currency, rate_type: d.rate_type }),
          [d.start_date ? "Start " + d.start_date : "", d.expires_at ? "Answer by " + when(d.expires_at) : ""].filter(Boolean).join(" · "), d.message];
      case "interview.offer_accepted": return ["Offer accepted: hired"];
      case "interview.offer_declined": return ["Offer declined", "", d.reason];
      case "interview.offer_withdrawn": return ["Offer withdrawn " + by, "", d.reason];
      case "interview.cancelled": return ["Cancelled " + by, d.job_closed ? "The job was closed" : "", d.reason];
      case "interview.expired": return [(d.what === "offer" ? "Offer" : "Invitation") + " expired unanswered"];
      default: return [EVENT[e.type] || e.type];
    }
  }
  var TODO = {
    invited: "accept or decline the invitation",
    accepted: "start the interview or make an offer",
    in_progress: "make an offer, or cancel",
    offer_extended: "accept or decline the offer"
  };
  function renderInterview(iv) {
    var back = ROLE === "client" ? "My Jobs" : ROLE === "freelancer" ? "Interviews" : "Platform";
    nav([]);
    var title = ROLE === "freelancer" ? jobName(iv.job_id) : person(iv.freelancer_id) + " \u00b7 " + jobName(iv.job_id);
    var out = ['<p class="crumb"><a href="/dashboard' + esc(TZQ) + '">' + esc(back) + "</a> / " + esc(jobName(iv.job_id)) + "</p>"];
    out.push("<h1>" + esc(title) + ' <span class="pill s-' + iv.status + '">' + esc(STATUS[iv.status]) + "</span></h1>");
    var facts = [["Client", person(iv.client_id)], ["Freelancer", person(iv.freelancer_id)], ["Job", jobName(iv.job_id)]];
    if (waiting(iv)) facts.push(["Next", waiting(iv) + (iv.next_actor === MY_SIDE ? ": " + TODO[iv.status] : "")]);
    if (iv.next_deadline_at) facts.push(["Deadline", when(iv.next_deadline_at) + " (" + left(iv.next_deadline_at) + ")"]);
    if (iv.scheduled_at) facts.push(["Meeting", scheduled(iv) + (iv.reschedules ? " · moved " + plural(iv.reschedules, "time") : "")]);
    if (iv.offer) facts.push(["Offer", money(iv.offer) + (iv.offer.start_date ? " · start " + iv.offer.start_date : "")]);
    if (!OPEN[iv.status]) facts.push(["Outcome", closedLine(iv)]);
    out.push('<div class="facts panel"><dl>' + facts.map(function (f) {
      return "<div><dt>" + esc(f[0]) + "</dt><dd>" + esc(f[1]) + "</dd></div>";
    }).join("") + "</dl></div>");
    out.push(section("timeline", "Timeline", '<ol class="timeline">' + iv.timeline.map(function (e) {
      var t = entryText(e, iv);
      return '<li class="t-' + esc(e.type.replace("interview.", "")) + '"><div class="when">' + timeTag(e.occurred_at, when(e.occurred_at)) +
        '</div><div class="what"><b>' + esc(t[0]) + "</b>" + (t[1] ? '<div class="muted">' + esc(t[1]) + "</div>" : "") +
        (t[2] ? '<blockquote>' + esc(t[2]) + "</blockquote>" : "") + "</div></li>";
    }).join("") + "</ol>", plural(iv.timeline.length, "event")));
    return out.join("");
  }

  // ------------------------------------------------------------ render, live
  function render() {
    var focused = document.activeElement && document.activeElement.getAttribute("href");
    view.innerHTML = DETAIL ? renderInterview(state)
      : READER ? renderPlatform(state)
      : ROLE === "client" ? renderClient(state) : renderFreelancer(state);
    if (focused) {
      var again = view.querySelector('a[href="' + focused.replace(/"/g, '\\"') + '"]');
      if (again) again.focus();
    }
  }
  document.getElementById("who").textContent = person(ME) + " \u00b7 " + ROLE;
  render();
  setInterval(render, 30000);   // countdowns move on

  var live = document.getElementById("live");
  var last = null;
  function update(p) {
    if (!DETAIL) { state = p; render(); return; }
    if (last !== null && p.position === last) return;
    last = p.position;
    fetch("/views/interviews/" + encodeURIComponent(DETAIL), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (iv) { if (iv) { state = iv; render(); } });
  }
  function connect() {
    var source = new EventSource("/views/stream");
    source.addEventListener("open", function () { live.textContent = "live"; live.className = "live on"; });
    source.addEventListener("update", function (ev) { update(JSON.parse(ev.data)); });
    source.addEventListener("error", function () { live.textContent = "reconnecting…"; live.className = "live off"; });
  }
  if (window.EventSource) connect(); else live.textContent = "no live updates in this browser";
  window.__dashboardApply = update;
})();
