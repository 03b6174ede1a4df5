using Microsoft.AspNetCore.Hosting.Server;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>The host's application without its context type: rents request objects and runs the host's steps of a request on one.</summary>
internal abstract class Http1Application
{
    private long _served;
    private int _inUse;

    /// <summary>Requests this layer served (tests, diagnostics).</summary>
    public long Served => Volatile.Read(ref _served);

    /// <summary>Request objects rented and not returned: 0 when every connection is idle.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    protected void Rented() => Interlocked.Increment(ref _inUse);

    protected void Returned(bool served)
    {
        Interlocked.Decrement(ref _inUse);
        if (served) Interlocked.Increment(ref _served);
    }

    /// <summary>A request object of this thread's pool (an idle connection holds none).</summary>
    public abstract Http1Exchange Rent();

    /// <summary>Back to this thread's pool, reset.</summary>
    public abstract void Return(Http1Exchange exchange);

    // The request as Kestrel runs it: CreateContext, ProcessRequestAsync, then (the caller) the response's end and the
    // OnCompleted callbacks, then DisposeContext. The connection's own frame (kept across requests) awaits the app: the
    // request has no async frame of its own (in Debug builds each async call allocates one).

    /// <summary>The host's context for the request, kept by the request object until <see cref="DisposeContext"/>.</summary>
    public abstract void CreateContext(Http1Exchange exchange);

    public abstract Task ProcessRequestAsync(Http1Exchange exchange);

    public abstract void DisposeContext(Http1Exchange exchange, Exception? failure);
}

internal sealed class Http1Application<TContext>(IHttpApplication<TContext> application) : Http1Application where TContext : notnull
{
    /// <summary>Spare request objects of this thread (a loop's): bounded; each keeps its HttpContext for the next request.</summary>
    [ThreadStatic] private static Stack<Http1Exchange<TContext>>? t_spares;
    private const int MaxSpares = 256;

    public override Http1Exchange Rent()
    {
        Rented();
        return t_spares is { Count: > 0 } spares ? spares.Pop() : new Http1Exchange<TContext>();
    }

    public override void Return(Http1Exchange exchange)
    {
        Returned(served: exchange.Owner is not null);
        exchange.Reset();
        var spares = t_spares ??= new Stack<Http1Exchange<TContext>>();
        if (spares.Count < MaxSpares) spares.Push((Http1Exchange<TContext>)exchange);
    }

    public override void CreateContext(Http1Exchange exchange)
    {
        var typed = (Http1Exchange<TContext>)exchange;
        typed.Current = application.CreateContext(exchange);
    }

    public override Task ProcessRequestAsync(Http1Exchange exchange) => application.ProcessRequestAsync(((Http1Exchange<TContext>)exchange).Current!);

    public override void DisposeContext(Http1Exchange exchange, Exception? failure)
    {
        var typed = (Http1Exchange<TContext>)exchange;
        var context = typed.Current!;
        typed.Current = default;
        application.DisposeContext(context, failure);
    }
}
