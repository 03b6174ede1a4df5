using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>How the response body is framed on the wire (decided when the head is written).</summary>
internal enum Http1BodyFraming
{
    /// <summary>HEAD, 1xx, 204, 304: the writes are dropped.</summary>
    None,
    ContentLength,
    Chunked,
    /// <summary>HTTP/1.0 without a length, or a Transfer-Encoding the app framed itself: the bytes as written, the connection closes after.</summary>
    Raw,
}

/// <summary>The response side: status, fields, OnStarting/OnCompleted, the body feature and the response's end.</summary>
internal abstract partial class Http1Exchange : IHttpResponseFeature, IHttpResponseBodyFeature
{
    private readonly Http1ResponseHeaders _responseHeaders = new();
    private readonly Http1ResponseBody _responseBody;
    private Http1ResponseStream? _responseStream;
    private Stack<KeyValuePair<Func<object, Task>, object>>? _onStarting, _onCompleted;

    protected Http1Exchange() => _responseBody = new Http1ResponseBody(this);

    public int StatusCode { get; set; } = StatusCodes.Status200OK;
    public string? ReasonPhrase { get; set; }
    IHeaderDictionary IHttpResponseFeature.Headers { get; set; } = new HeaderDictionary();
    public bool HasStarted { get; private set; }
    internal Http1BodyFraming Framing { get; private set; }
    /// <summary>False once this response ends the connection (asked by either side, or its framing needs the close).</summary>
    internal bool KeepAlive { get; set; }
    internal IHeaderDictionary ResponseHeaders => ((IHttpResponseFeature)this).Headers;

    [Obsolete("Use IHttpResponseBodyFeature.Stream")]
    Stream IHttpResponseFeature.Body
    {
        get => ((IHttpResponseBodyFeature)this).Stream;
        set => throw new NotSupportedException("replace the response body through IHttpResponseBodyFeature");
    }

    Stream IHttpResponseBodyFeature.Stream => _responseStream ??= new Http1ResponseStream(_responseBody);
    PipeWriter IHttpResponseBodyFeature.Writer => _responseBody;

    private void BeginResponse()
    {
        StatusCode = StatusCodes.Status200OK;
        ReasonPhrase = null;
        ((IHttpResponseFeature)this).Headers = _responseHeaders;
        HasStarted = false;
        Framing = Http1BodyFraming.None;
        KeepAlive = Head.Http10 ? Head.ConnectionKeepAlive && !Head.ConnectionClose : !Head.ConnectionClose;
        _responseBody.Begin(Connection.Output);
    }

    private void ResetResponse()
    {
        _responseHeaders.Clear();
        _onStarting?.Clear();
        _onCompleted?.Clear();
        _responseBody.Reset();
    }

    public void OnStarting(Func<object, Task> callback, object state)
    {
        if (HasStarted) throw new InvalidOperationException("the response has already started");
        (_onStarting ??= new()).Push(new(callback, state));
    }

    public void OnCompleted(Func<object, Task> callback, object state) => (_onCompleted ??= new()).Push(new(callback, state));

    void IHttpResponseBodyFeature.DisableBuffering() { }

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => StartAsync(completing: false);

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken)
        => SendFileFallback.SendFileAsync(((IHttpResponseBodyFeature)this).Stream, path, offset, count, cancellationToken);

    Task IHttpResponseBodyFeature.CompleteAsync() => CompleteBodyAsync();

    private async Task CompleteBodyAsync()
    {
        await StartAsync(completing: true);
        await _responseBody.EndAsync();
    }

    /// <summary>The OnStarting callbacks (last registered first, as Kestrel), then the head into the connection's output (not sent yet).</summary>
    internal Task StartAsync(bool completing)
    {
        if (HasStarted) return Task.CompletedTask;
        while (_onStarting is not null && _onStarting.TryPop(out var callback))
        {
            var pending = callback.Key(callback.Value);
            if (!pending.IsCompletedSuccessfully) return StartAfterCallbacksAsync(pending, completing);
        }
        WriteHead(completing);
        return Task.CompletedTask;
    }

    private async Task StartAfterCallbacksAsync(Task pending, bool completing)
    {
        await pending;
        while (_onStarting!.TryPop(out var callback)) await callback.Key(callback.Value);
        if (!HasStarted) WriteHead(completing);
    }

    /// <summary>For a writer's GetMemory before the start: callbacks that complete at once (all of ZcProxy's) run inline.</summary>
    internal void StartNow()
    {
        if (!HasStarted) StartAsync(completing: false).GetAwaiter().GetResult();
    }

    private void WriteHead(bool completing)
    {
        Framing = Http1ResponseHead.Decide(this, completing);
        Http1ResponseHead.Write(this, Connection.Output);
        HasStarted = true;
        _responseBody.Started(Framing, ResponseHeaders.ContentLength ?? 0);
    }

    /// <summary>
    /// The request is over (the app returned or threw): a failure before the start becomes a 500 (or a bad request's own
    /// status), after it an abort; then the body's end, the flush, and the OnCompleted callbacks, as Kestrel runs them.
    /// </summary>
    internal ValueTask EndAsync(Exception? failure)
    {
        // The usual end (the app returned after the response started): without an async frame when the body's end does
        // not wait and the OnCompleted callbacks complete at once (in Debug builds every async call allocates one).
        if (failure is not null || !HasStarted) return EndAnyAsync(failure);
        var ending = _responseBody.EndAsync();
        if (!ending.IsCompletedSuccessfully) return EndAnyAsync(failure, ending);
        ending.GetAwaiter().GetResult();
        return RunCompletedCallbacks();
    }

    private async ValueTask EndAnyAsync(Exception? failure, ValueTask? bodyEnding = null)
    {
        if (failure is not null) Owner.LogApplicationError(failure);
        if (!HasStarted && Connection.IsAborted)
        {
            // The client went away (or half-closed: as under Kestrel the request was aborted): no response at all, rather
            // than one the app wrote for an aborted request.
            KeepAlive = false;
        }
        else if (failure is not null && HasStarted)
        {
            Connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("the application failed after the response started", failure));
            KeepAlive = false;
        }
        else
        {
            if (failure is not null)
            {
                _onStarting?.Clear();
                _responseHeaders.Clear();
                ((IHttpResponseFeature)this).Headers = _responseHeaders;
                ReasonPhrase = null;
                StatusCode = failure is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError;
                if (failure is BadHttpRequestException) KeepAlive = false;
            }
            try
            {
                await StartAsync(completing: true);
                await (bodyEnding ?? _responseBody.EndAsync()); // the body's end once: the one that did not complete at once
            }
            catch (Exception e)
            {
                Owner.LogApplicationError(e);
                Connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("the response could not be completed", e));
                KeepAlive = false;
            }
        }
        await RunCompletedCallbacks();
    }

    /// <summary>The OnCompleted callbacks, last registered first; a failure is logged and the next one runs.</summary>
    private ValueTask RunCompletedCallbacks()
    {
        while (_onCompleted is not null && _onCompleted.TryPop(out var callback))
        {
            Task pending;
            try { pending = callback.Key(callback.Value); }
            catch (Exception e) { Owner.LogApplicationError(e); continue; }
            if (!pending.IsCompletedSuccessfully) return CompletedCallbacksAfterAsync(pending);
        }
        return default;
    }

    private async ValueTask CompletedCallbacksAfterAsync(Task pending)
    {
        try { await pending; }
        catch (Exception e) { Owner.LogApplicationError(e); }
        await RunCompletedCallbacks();
    }
}
