using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace FakeDapr;

/// <summary>
/// The broker behind every fake sidecar of a test: one pub/sub component (or several, by name) that keeps
/// each topic's messages until a subscriber exists, fans them out to every subscribing app, and records what
/// was published and how each delivery ended. Its knobs make the at-least-once cases happen on purpose.
/// </summary>
public sealed class FakePubSub(params string[] componentNames)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string PubSub, string Topic), List<Subscription>> _subscriptions = [];
    private readonly Dictionary<(string PubSub, string Topic), List<CloudEvent>> _backlog = [];
    private readonly ConcurrentDictionary<string, TopicBehavior> _behaviors = new(StringComparer.Ordinal);

    /// <summary>The pub/sub components every sidecar on this broker knows (daprd's loaded components).</summary>
    public IReadOnlySet<string> Components { get; } = componentNames.Length == 0 ? new HashSet<string> { "pubsub" } : [.. componentNames];

    /// <summary>Every message published, dead letters included, in order.</summary>
    public ConcurrentQueue<CloudEvent> Published { get; } = new();

    /// <summary>Every delivery attempt and how it ended.</summary>
    public ConcurrentQueue<Delivery> Deliveries { get; } = new();

    /// <summary>How often a message is tried before it goes to the dead-letter topic (a resiliency policy's retries + 1).</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The pause between two attempts of one message (a constant resiliency policy).</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How many messages of one subscription are in flight to the app at once.</summary>
    public int MaxConcurrency { get; set; } = 32;

    /// <summary>Sees, and may replace, each message as it is published (e.g. to damage one in transit).</summary>
    public Func<CloudEvent, CloudEvent>? OnPublish { get; set; }

    /// <summary>Duplicates and reordering for one topic.</summary>
    public TopicBehavior Topic(string topic) => _behaviors.GetOrAdd(topic, _ => new TopicBehavior());

    /// <summary>The published data of <paramref name="topic"/>, for assertions.</summary>
    public IReadOnlyList<JsonNode?> DataOf(string topic) => [.. Published.Where(message => message.Topic == topic).Select(message => message.Data)];

    internal TopicBehavior BehaviorOf(string topic) => _behaviors.TryGetValue(topic, out var behavior) ? behavior : TopicBehavior.Plain;

    internal void Publish(CloudEvent message)
    {
        if (OnPublish is { } onPublish)
        {
            message = onPublish(message);
        }

        Published.Enqueue(message);
        List<Subscription> targets;
        lock (_lock)
        {
            if (!_subscriptions.TryGetValue((message.PubSubName, message.Topic), out var subscribed) || subscribed.Count == 0)
            {
                // Durable topic: held until an app subscribes, as a broker's consumer group would.
                Backlog(message.PubSubName, message.Topic).Add(message);
                return;
            }

            targets = [.. subscribed];
        }

        foreach (var subscription in targets)
        {
            subscription.Enqueue(message.Copy());
        }
    }

    internal void Subscribe(Subscription subscription)
    {
        List<CloudEvent> held;
        lock (_lock)
        {
            var key = (subscription.PubSubName, subscription.Topic);
            if (!_subscriptions.TryGetValue(key, out var subscribed))
            {
                subscribed = [];
                _subscriptions[key] = subscribed;
            }

            subscribed.Add(subscription);
            held = [.. Backlog(key.PubSubName, key.Topic)];
            _backlog.Remove(key);
        }

        foreach (var message in held)
        {
            subscription.Enqueue(message);
        }
    }

    internal void Unsubscribe(Subscription subscription)
    {
        lock (_lock)
        {
            if (_subscriptions.TryGetValue((subscription.PubSubName, subscription.Topic), out var subscribed))
            {
                subscribed.Remove(subscription);
            }
        }
    }

    private List<CloudEvent> Backlog(string pubSub, string topic)
    {
        if (!_backlog.TryGetValue((pubSub, topic), out var held))
        {
            held = [];
            _backlog[(pubSub, topic)] = held;
        }

        return held;
    }
}

/// <summary>The at-least-once behaviour a topic shows its subscribers.</summary>
public sealed class TopicBehavior
{
    internal static TopicBehavior Plain { get; } = new();

    /// <summary>Every message is delivered twice, both at once, as after a lost acknowledgement.</summary>
    public bool DeliverTwice { get; set; }

    /// <summary>
    /// Messages are gathered for this long, then delivered one by one newest first: what arrives is out of
    /// the order it was published in.
    /// </summary>
    public TimeSpan? ReverseWithin { get; set; }
}
