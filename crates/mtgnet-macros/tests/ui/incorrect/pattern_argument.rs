struct Condition;

#[mtgnet_macros::service]
pub trait Math {
    async fn add(&self, (a, b): (i64, i64)) -> Result<i64, Condition>;
}

fn main() {}
