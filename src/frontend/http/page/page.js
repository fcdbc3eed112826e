// recbot's status page: follows the event stream and refreshes the page's sections (fetched
// again from the server, which words and escapes everything) without reloading the page.
'use strict';

(function () {
  const after = document.body.dataset.after;
  if (after === undefined) {
    return; // not the status page (the login form)
  }
  // The sections the server renders; each is replaced whole by its fresh version.
  const SECTIONS = ['service', 'logins', 'events', 'uploads', 'quota', 'disk'];
  // Events that change a login's state or an upload: refreshed sooner.
  const QUICK = /^(Live|Stream|Recording|Upload|Watch|Chat(Joined|Parted))/;
  // Refreshes start at least this far apart (an upload's progress events come often).
  const MIN_GAP_MS = 1000;
  const indicator = document.getElementById('live-updates');
  let lastStart = 0;
  let timer = null;
  let running = false;
  let pending = false;

  function show(state, words) {
    if (indicator) {
      indicator.dataset.state = state;
      indicator.textContent = 'live updates: ' + words;
    }
  }

  function refresh() {
    if (running) {
      pending = true;
      return;
    }
    running = true;
    lastStart = Date.now();
    fetch('/', { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload(); // logged out meanwhile: show the login form
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        const fresh = new DOMParser().parseFromString(text, 'text/html');
        for (const id of SECTIONS) {
          const now = document.getElementById(id);
          const next = fresh.getElementById(id);
          if (now && next) {
            now.replaceWith(document.importNode(next, true));
          }
        }
      })
      .catch(function () {
        show('error', 'the page could not be refreshed; retrying with the next event');
      })
      .finally(function () {
        running = false;
        if (pending) {
          pending = false;
          schedule(200);
        }
      });
  }

  function schedule(delay) {
    if (timer === null) {
      const wait = Math.max(delay, lastStart + MIN_GAP_MS - Date.now());
      timer = window.setTimeout(function () {
        timer = null;
        refresh();
      }, wait);
    }
  }

  // Shown at once, worded by the next refresh.
  function prepend(event) {
    const list = document.getElementById('event-list');
    if (!list) {
      return;
    }
    const item = document.createElement('li');
    item.dataset.id = String(event.id);
    item.dataset.type = String(event.type);
    item.className = 'arriving';
    const time = document.createElement('time');
    time.textContent = String(event.at || '');
    item.append(time, ' ' + event.type + (event.login ? ' · ' + event.login : ''));
    list.prepend(item);
  }

  const source = new EventSource('/api/v1/events?after=' + encodeURIComponent(after));
  source.onopen = function () {
    show('open', 'on');
  };
  source.onerror = function () {
    // EventSource reconnects by itself and resumes after the last event (Last-Event-ID).
    show('reconnecting', 'reconnecting');
  };
  source.onmessage = function (message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    prepend(event);
    schedule(QUICK.test(String(event.type)) ? 100 : 1000);
  };
})();
