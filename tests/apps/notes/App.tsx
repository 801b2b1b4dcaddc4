// A test app in the shape of a Google AI Studio export (React, TSX, an
// import map in index.html, @google/genai in package.json). On load it
// reads through Cowork's read lane and tries what it must not be able to
// do, and writes every outcome into <pre id="out"> as JSON, which the
// end-to-end tests read from headless Chromium.
import React, { useEffect, useState } from 'react';
import { GoogleGenAI } from '@google/genai';

declare global {
  interface Window {
    cowork: any;
  }
}

type Outcome = { ok: boolean; value?: unknown; error?: string };

async function attempt(f: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await f() };
  } catch (e: any) {
    return { ok: false, error: String((e && e.message) || e) };
  }
}

const post = (url: string, body: unknown, type = 'application/json') =>
  fetch(url, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(body) }).then(
    async (r) => [r.status, await r.text()],
  );

export function App() {
  const [out, setOut] = useState<Record<string, unknown> | null>(null);
  useEffect(() => {
    (async () => {
      const p = new URLSearchParams(location.hash.slice(1));
      const r: Record<string, unknown> = {};
      // The Gemini SDK is bundled offline (its key is the app's own).
      r.genai = typeof GoogleGenAI === 'function' && process.env.API_KEY === 'PLACEHOLDER_API_KEY';
      r.activeWindow = await attempt(() => window.cowork.context.activeWindow());
      r.recent = await attempt(() => window.cowork.context.recentActivity({ minutes: 600 }));
      r.time = await attempt(() => window.cowork.context.currentTime());
      r.profile = await attempt(() => window.cowork.user.profile());
      r.preferences = await attempt(() => window.cowork.user.preferences());
      r.conversations = await attempt(() => window.cowork.data.conversations());
      r.search = await attempt(() => window.cowork.data.search('invoice'));
      r.forgedAppId = await attempt(() =>
        window.cowork.data.conversations({ appId: p.get('other') || 'someone-else-000000' }),
      );
      r.overwrite = await attempt(async () => {
        (window as any).cowork = null;
        return window.cowork !== null;
      });
      if (p.get('other_origin')) {
        r.otherOrigin = await attempt(() =>
          post(p.get('other_origin') + '/__cowork/read', { ns: 'data', method: 'conversations' }),
        );
      }
      if (p.get('gw')) {
        r.gateway = await attempt(() =>
          fetch('http://127.0.0.1:' + p.get('gw') + '/v1/models').then((x) => x.status),
        );
      }
      r.ownModels = await attempt(() => post('/v1/chat/completions', { model: 'x', messages: [] }));
      r.grpc = await attempt(() => post('/cowork.chat.v1.Chat/ListThreads', {}, 'application/grpc-web'));
      r.toolCall = await attempt(() => post('/__cowork/read', { ns: 'mcp', method: 'callTool', args: {} }));
      localStorage.setItem('origin', location.host);
      r.storage = localStorage.getItem('origin');
      setOut(r);
      document.title = 'done';
    })();
  }, []);
  return <pre id="out">{out ? JSON.stringify(out) : 'loading'}</pre>;
}
