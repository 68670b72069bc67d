-- returns: class labels (group_rank, class_index) on which the groups manifest and the class table
-- disagree: a label of a shipped group (group_rank < $groups_num) missing on one side, a label
-- whose manifest rows hold more than one class, another class or group, or another image count
-- than class_images; must be none. The manifest has no hemisphere column: classes are compared
-- by (zone, class_e, class_n, class_h) within one label.
-- needs: groups
with

shipped_classes as (
    select * from kept_classes
    where group_rank < $groups_num
),

manifest_labels as (
    select
        group_rank,
        class_index,
        count(distinct (utm_zone, class_e, class_n, class_h, group_e, group_n, group_h)) as keys,
        min(utm_zone) as zone,
        min(class_e) as class_e,
        min(class_n) as class_n,
        min(class_h) as class_h,
        min(group_e) as group_e,
        min(group_n) as group_n,
        min(group_h) as group_h,
        count(*) as images
    from groups_manifest
    group by group_rank, class_index
),

final as (
    select
        coalesce(m.group_rank, k.group_rank) as group_rank,
        coalesce(m.class_index, k.class_index) as class_index,
        m.keys as manifest_keys,
        m.images as manifest_images,
        k.class_images,
        (m.zone, m.class_e, m.class_n, m.class_h, m.group_e, m.group_n, m.group_h) as manifest_class,
        (k.zone, k.class_e, k.class_n, k.class_h, k.group_e, k.group_n, k.group_h) as kept_class
    from manifest_labels as m
    full outer join shipped_classes as k using (group_rank, class_index)
    where
        m.group_rank is null
        or k.group_rank is null
        or m.keys <> 1
        or m.images <> k.class_images
        or (m.zone, m.class_e, m.class_n, m.class_h, m.group_e, m.group_n, m.group_h)
        <> (k.zone, k.class_e, k.class_n, k.class_h, k.group_e, k.group_n, k.group_h)
)

select * from final
