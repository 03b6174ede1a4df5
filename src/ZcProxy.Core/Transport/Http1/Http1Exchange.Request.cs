using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>The request side: line, fields, body, connection, lifetime and identifier features.</summary>
internal abstract partial class Http1Exchange : IHttpRequestFeature, IRequestBodyPipeFeature, IHttpRequestBodyDetectionFeature,
    IHttpConnectionFeature, IHttpRequestLifetimeFeature, IHttpRequestIdentifierFeature, IHttpMaxRequestBodySizeFeature
{
    private readonly HeaderDictionary _requestHeaders = new();
    private readonly Http1RequestBody _body = new();
    private Http1RequestStream? _bodyStream;
    private Stream? _replacedBody;
    private PipeReader? _replacedBodyReader;
    private CancellationTokenSource? _aborted;
    private bool _abortedLinked;
    private string? _traceIdentifier;
    private long? _maxRequestBodySize;

    /// <summary>The request fields, filled by the parser before <see cref="Begin"/>.</summary>
    internal IHeaderDictionary ParsedHeaders => _requestHeaders;

    /// <summary>The previous request's strings, for the parser to reuse.</summary>
    internal Http1StringCache Strings { get; } = new();
    internal Http1RequestHead Head;

    private void BeginRequest(in Http1RequestHead head)
    {
        Head = head;
        Protocol = head.Http10 ? "HTTP/1.0" : "HTTP/1.1";
        Method = head.Method;
        Path = head.Path;
        QueryString = head.QueryString;
        RawTarget = head.RawTarget;
        PathBase = string.Empty;
        Scheme = "http";
        Headers = _requestHeaders;
        _body.Begin(Connection.Input, Math.Max(0, head.ContentLength), this);
        _maxRequestBodySize = Owner.Limits.MaxRequestBodySize;
        _traceIdentifier = null;
    }

    private void ResetRequest()
    {
        _requestHeaders.Clear();
        _body.Reset();
        _replacedBody = null;
        _replacedBodyReader = null;
        if (_aborted is { } aborted)
        {
            bool linkEnded = !_abortedLinked || Connection.StopCancelOnClose(CloseLinked.RequestAborted, aborted);
            _abortedLinked = false;
            if (!linkEnded) _aborted = null; // the connection's close is cancelling it: never reused (no timer: nothing to dispose)
            else if (!aborted.TryReset()) { aborted.Dispose(); _aborted = null; }
        }
        Head = default;
    }

    internal Http1RequestBody Body => _body;

    public string Protocol { get; set; } = "HTTP/1.1";
    public string Scheme { get; set; } = "http";
    public string Method { get; set; } = "GET";
    public string PathBase { get; set; } = "";
    public string Path { get; set; } = "";
    public string QueryString { get; set; } = "";
    public string RawTarget { get; set; } = "";
    public IHeaderDictionary Headers { get; set; } = new HeaderDictionary();

    Stream IHttpRequestFeature.Body
    {
        get => _replacedBody ?? (_bodyStream ??= new Http1RequestStream(_body));
        set => _replacedBody = ReferenceEquals(value, _bodyStream) ? null : value;
    }

    /// <summary>The own reader while nobody replaced the body stream; else a reader over the replacement (as Kestrel does).</summary>
    PipeReader IRequestBodyPipeFeature.Reader
    {
        get
        {
            if (_replacedBody is null) return _body;
            return _replacedBodyReader ??= PipeReader.Create(_replacedBody, new StreamPipeReaderOptions(leaveOpen: true));
        }
    }

    bool IHttpRequestBodyDetectionFeature.CanHaveBody => Head.ContentLength > 0;

    // Connection: from the transport connection (its endpoints are IPEndPoints).
    string IHttpConnectionFeature.ConnectionId
    {
        get => Connection.ConnectionId;
        set => Connection.ConnectionId = value;
    }

    IPAddress? IHttpConnectionFeature.RemoteIpAddress
    {
        get => (Connection.RemoteEndPoint as IPEndPoint)?.Address;
        set { }
    }

    IPAddress? IHttpConnectionFeature.LocalIpAddress
    {
        get => (Connection.LocalEndPoint as IPEndPoint)?.Address;
        set { }
    }

    int IHttpConnectionFeature.RemotePort
    {
        get => (Connection.RemoteEndPoint as IPEndPoint)?.Port ?? 0;
        set { }
    }

    int IHttpConnectionFeature.LocalPort
    {
        get => (Connection.LocalEndPoint as IPEndPoint)?.Port ?? 0;
        set { }
    }

    /// <summary>Made on first use and reused per request; cancelled when the client connection goes away or the request is aborted.</summary>
    CancellationToken IHttpRequestLifetimeFeature.RequestAborted
    {
        get
        {
            if (_aborted is null || !_abortedLinked)
            {
                _aborted ??= new CancellationTokenSource();
                _abortedLinked = true;
                Connection.CancelOnClose(CloseLinked.RequestAborted, _aborted);
            }
            return _aborted.Token;
        }
        set => throw new NotSupportedException("the connection owns RequestAborted");
    }

    void IHttpRequestLifetimeFeature.Abort() => Connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException("the request was aborted by the application"));

    string IHttpRequestIdentifierFeature.TraceIdentifier
    {
        get => _traceIdentifier ??= $"{Connection.ConnectionId}:{Owner.RequestCount:X8}";
        set => _traceIdentifier = value;
    }

    bool IHttpMaxRequestBodySizeFeature.IsReadOnly => _body.Started;

    long? IHttpMaxRequestBodySizeFeature.MaxRequestBodySize
    {
        get => _maxRequestBodySize;
        set
        {
            if (_body.Started) throw new InvalidOperationException("the request body is being read already");
            _maxRequestBodySize = value;
        }
    }

    /// <summary>What the body reader checks when it starts (Kestrel's 413).</summary>
    internal long? MaxRequestBodySize => _maxRequestBodySize;
}
