"""HTTP inputs: webhook endpoints (``/hooks/{input_id}``) that start a flow or hand work to an agent."""
